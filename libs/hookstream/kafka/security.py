"""One ``KafkaSecurity`` in each client's dialect, and a refused handshake in words that name the setting.

librdkafka (every confluent-kafka client: producers, admins, the outbox relay, the DLQ reader),
aiokafka (the consumer runtime) and Kafka's own Java tools (``hookstream dev kafka-tool``) spell the
same settings differently; they are translated here only, so a client cannot be left out of one.

A wrong password or an untrusted certificate does not go away by waiting: ``librdkafka_refusal`` and
``aiokafka_refusal`` recognise one in what a client reports and give a ``ConfigurationError`` naming the
setting, where a connection failure would otherwise be retried until a timeout that only says "did not answer".
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import SaslAuthenticationFailed, UnsupportedSaslMechanismError
from confluent_kafka import KafkaError

from hookstream.errors import ConfigurationError
from hookstream.settings import KafkaConnection, KafkaSecurity

_SASL_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


def librdkafka_config(security: KafkaSecurity) -> dict[str, str]:
    """The librdkafka properties (empty for PLAINTEXT, librdkafka's default)."""
    if security.protocol == "PLAINTEXT":
        return {}
    config: dict[str, str] = {"security.protocol": security.protocol}
    if security.sasl:
        config["sasl.mechanism"] = security.sasl_mechanism
        config["sasl.username"] = security.sasl_username or ""
        config["sasl.password"] = security.sasl_password.get_secret_value() if security.sasl_password else ""
    if security.tls:
        # Without a CA file librdkafka uses the system's CA certificates; host names are verified (its default).
        if security.ssl_ca_file is not None:
            config["ssl.ca.location"] = str(security.ssl_ca_file)
        if security.ssl_cert_file is not None and security.ssl_key_file is not None:
            config["ssl.certificate.location"] = str(security.ssl_cert_file)
            config["ssl.key.location"] = str(security.ssl_key_file)
    return config


def aiokafka_options(security: KafkaSecurity) -> dict[str, Any]:
    """Keyword arguments of an aiokafka client (empty for PLAINTEXT). Reads the certificate files:
    call it when the client is made, not at import."""
    if security.protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": security.protocol}
    if security.sasl:
        options["sasl_mechanism"] = security.sasl_mechanism
        options["sasl_plain_username"] = security.sasl_username
        options["sasl_plain_password"] = security.sasl_password.get_secret_value() if security.sasl_password else ""
    if security.tls:
        from aiokafka.helpers import create_ssl_context

        try:
            options["ssl_context"] = create_ssl_context(
                cafile=security.ssl_ca_file, certfile=security.ssl_cert_file, keyfile=security.ssl_key_file
            )
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise ConfigurationError(
                "the TLS files could not be loaded (KAFKA_SSL_CA_FILE / KAFKA_SSL_CERT_FILE / KAFKA_SSL_KEY_FILE):"
                f" {exc}"
            ) from exc
    return options


def java_client_properties(security: KafkaSecurity, keystore: Path | None = None) -> dict[str, str]:
    """A Java client's properties (Kafka's command-line tools' ``--command-config``). ``keystore``: a PEM
    file holding the client key and then its certificate, for mTLS (Java takes the pair as one file)."""
    properties: dict[str, str] = {"security.protocol": security.protocol}
    if security.sasl:
        password = security.sasl_password.get_secret_value() if security.sasl_password else ""
        properties["sasl.mechanism"] = security.sasl_mechanism
        properties["sasl.jaas.config"] = (
            f"{_SASL_MODULES[security.sasl_mechanism]} required"
            f' username="{_jaas_quoted(security.sasl_username or "")}" password="{_jaas_quoted(password)}";'
        )
    if security.tls:
        if security.ssl_ca_file is not None:
            properties["ssl.truststore.type"] = "PEM"
            properties["ssl.truststore.location"] = str(security.ssl_ca_file)
        if keystore is not None:
            properties["ssl.keystore.type"] = "PEM"
            properties["ssl.keystore.location"] = str(keystore)
    return properties


def properties_text(properties: dict[str, str]) -> str:
    """A Java ``.properties`` file (read as ISO-8859-1, backslash escapes) of these keys and values."""
    return "".join(f"{_escaped(key, key=True)}={_escaped(value)}\n" for key, value in properties.items())


def _jaas_quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _escaped(text: str, *, key: bool = False) -> str:
    out = []
    for i, char in enumerate(text):
        code = ord(char)
        if char == "\\":
            out.append("\\\\")
        elif char in "\t\n\r\f":
            out.append({"\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f"}[char])
        elif (char == " " and (key or i == 0)) or (key and char in "=:#!") or (i == 0 and char in "#!"):
            out.append("\\" + char)
        elif code < 0x20 or code > 0x7E:
            encoded = char.encode("utf-16-be")  # a character beyond the BMP is a surrogate pair
            out.extend(f"\\u{int.from_bytes(encoded[j : j + 2], 'big'):04x}" for j in range(0, len(encoded), 2))
        else:
            out.append(char)
    return "".join(out)


def librdkafka_refusal(kafka: KafkaConnection, error: KafkaError) -> ConfigurationError | None:
    """What a librdkafka error (``error_cb``) means when it is the configuration's fault, else None
    (a broker away or restarting is retried)."""
    code, text = error.code(), error.str()
    if code == KafkaError._AUTHENTICATION:
        return _no_such_mechanism(kafka) if "unsupported sasl mechanism" in text.lower() else _credentials(kafka)
    if code in (KafkaError._SSL, KafkaError._TRANSPORT) and "certificate verify failed" in text.lower():
        return _untrusted(kafka, text)
    return None


def aiokafka_refusal(kafka: KafkaConnection, exc: BaseException) -> ConfigurationError | None:
    """``librdkafka_refusal`` for what an aiokafka connection raised."""
    if isinstance(exc, UnsupportedSaslMechanismError):
        return _no_such_mechanism(kafka)
    if isinstance(exc, SaslAuthenticationFailed):
        return _credentials(kafka)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _untrusted(kafka, str(exc))
    return None


async def aiokafka_diagnosis(kafka: KafkaConnection, options: dict[str, Any]) -> ConfigurationError | None:
    """Why aiokafka could not bootstrap, when it is the configuration: its client says only "Unable to
    bootstrap" (the reason goes to its log), so one connection per bootstrap address is tried here."""
    for address in kafka.bootstrap_servers.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            conn = await create_conn(host.strip("[]"), int(port), request_timeout_ms=10_000, **options)
        except Exception as exc:  # anything else is the broker being away: not ours to name
            refused = aiokafka_refusal(kafka, exc)
            if refused is not None:
                return refused
            continue
        conn.close()
    return None


def _credentials(kafka: KafkaConnection) -> ConfigurationError:
    security = kafka.security
    return ConfigurationError(
        f"Kafka at {kafka.bootstrap_servers} refused the SASL credentials of {security.sasl_username!r}"
        f" (KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD, mechanism {security.sasl_mechanism})"
    )


def _no_such_mechanism(kafka: KafkaConnection) -> ConfigurationError:
    return ConfigurationError(
        f"Kafka at {kafka.bootstrap_servers} does not offer the SASL mechanism"
        f" {kafka.security.sasl_mechanism} (KAFKA_SASL_MECHANISM)"
    )


def _untrusted(kafka: KafkaConnection, reason: str) -> ConfigurationError:
    at = f"Kafka at {kafka.bootstrap_servers}"
    if "mismatch" in reason.lower():
        return ConfigurationError(
            f"the certificate of {at} is not issued for that name: name the broker in KAFKA_BOOTSTRAP_SERVERS"
            " as its certificate does"
        )
    ca_file = kafka.security.ssl_ca_file
    if ca_file is not None:
        return ConfigurationError(f"the certificate of {at} is not trusted by KAFKA_SSL_CA_FILE ({ca_file})")
    return ConfigurationError(
        f"the certificate of {at} is not trusted by the system's CA certificates:"
        " set KAFKA_SSL_CA_FILE to the CA that signed it"
    )
