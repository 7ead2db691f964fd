"""The client properties Kafka's own Java tools need to reach a secured Kafka (``--command-config``).

Written for one run into a private temporary folder (mode 0700: the file holds the SASL password)
and removed after it. Java reads a client key and certificate as one PEM key store, so for mTLS the
key file and the certificate file are put together there too.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hookstream.errors import ConfigurationError
from hookstream.kafka.security import java_client_properties, properties_text
from hookstream.settings import KafkaSecurity

# The tools' options that name a client properties file: one given by the user is used as it is.
CONFIG_OPTIONS = ("--command-config", "--consumer.config", "--consumer-config", "--producer.config")


def names_a_config(argv: list[str]) -> bool:
    return any(arg == option or arg.startswith(f"{option}=") for arg in argv for option in CONFIG_OPTIONS)


@contextmanager
def command_config(security: KafkaSecurity) -> Iterator[Path]:
    """A properties file for ``security``, present while the context lasts."""
    with tempfile.TemporaryDirectory(prefix="hookstream-kafka-tool-") as name:
        folder = Path(name)
        keystore = None
        if security.ssl_cert_file is not None and security.ssl_key_file is not None:
            key = security.ssl_key_file.read_text()
            if "BEGIN RSA PRIVATE KEY" in key or "BEGIN EC PRIVATE KEY" in key:
                raise ConfigurationError(
                    f"KAFKA_SSL_KEY_FILE={security.ssl_key_file} is not PKCS#8, which Kafka's Java tools need:"
                    " convert it with `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8`"
                )
            keystore = folder / "client-keystore.pem"
            keystore.write_text(key.rstrip("\n") + "\n" + security.ssl_cert_file.read_text())
        path = folder / "client.properties"
        path.write_text(properties_text(java_client_properties(security, keystore)), encoding="latin-1")
        yield path
