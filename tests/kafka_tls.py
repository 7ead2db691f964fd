"""Certificates for a test broker's TLS listener, made with the JDK's keytool (the broker needs Java anyway).

A CA signs the broker's certificate (for ``localhost`` and ``127.0.0.1``); the broker gets a PKCS12 key
store holding its key and that chain, the clients the CA's certificate as PEM. ``other_ca`` is a second
CA that signed nothing here: a client trusting only it must refuse the broker.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

STOREPASS = "test-keystore-pass"


@dataclass(frozen=True)
class BrokerTls:
    keystore: Path  # PKCS12, password STOREPASS
    ca: Path  # PEM: the CA that signed the broker's certificate
    other_ca: Path  # PEM: a CA that did not


def _keytool(*args: str) -> None:
    keytool = shutil.which("keytool")
    assert keytool is not None, "keytool (a JDK) is needed for the broker's certificates"
    subprocess.run([keytool, *args], check=True, capture_output=True, timeout=120)


def _new_ca(folder: Path, name: str) -> tuple[Path, Path]:
    store, pem = folder / f"{name}.p12", folder / f"{name}.pem"
    common = ["-keystore", str(store), "-storetype", "PKCS12", "-storepass", STOREPASS]
    _keytool("-genkeypair", "-alias", "ca", "-keyalg", "EC", "-groupname", "secp256r1", "-validity", "2",
             "-dname", f"CN={name}", "-ext", "bc:c", *common)  # fmt: skip
    _keytool("-exportcert", "-rfc", "-alias", "ca", "-file", str(pem), *common)
    return store, pem


def broker_tls(folder: Path) -> BrokerTls:
    folder.mkdir(parents=True, exist_ok=True)
    ca_store, ca_pem = _new_ca(folder, "hookstream-test-ca")
    _, other_pem = _new_ca(folder, "some-other-ca")
    keystore = folder / "broker.p12"
    broker = ["-keystore", str(keystore), "-storetype", "PKCS12", "-storepass", STOREPASS]
    csr, signed = folder / "broker.csr", folder / "broker.crt"
    _keytool("-genkeypair", "-alias", "broker", "-keyalg", "EC", "-groupname", "secp256r1", "-validity", "2",
             "-dname", "CN=localhost", *broker)  # fmt: skip
    _keytool("-certreq", "-alias", "broker", "-file", str(csr), *broker)
    _keytool("-gencert", "-alias", "ca", "-keystore", str(ca_store), "-storetype", "PKCS12", "-storepass", STOREPASS,
             "-infile", str(csr), "-outfile", str(signed), "-rfc", "-validity", "2",
             "-ext", "SAN=dns:localhost,ip:127.0.0.1")  # fmt: skip
    _keytool("-importcert", "-noprompt", "-alias", "ca", "-file", str(ca_pem), *broker)
    _keytool("-importcert", "-alias", "broker", "-file", str(signed), *broker)
    return BrokerTls(keystore, ca_pem, other_pem)
