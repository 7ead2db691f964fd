"""Secrets at rest: AES-256-GCM envelopes under a keyring whose keys rotate.

A value is sealed as ``v1:<key id>:<base64 of nonce + ciphertext + tag>``, with a fresh random 96-bit
nonce per value and the place it is kept (``table.column:row id``) as associated data, so a ciphertext
copied into another row or column does not open. ``HOOKSTREAM_SECRETS_KEYS`` holds the keys as
``id:<base64 of 32 bytes>`` separated by commas, newest first: the first seals what is written, every
one opens what is read, so a key is rotated by putting a new one first (``hookstream secrets rotate``
then re-seals what is stored) and dropping the old one once nothing is sealed with it.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from hookstream.errors import SealedValueUnreadable, SecretsKeysInvalid, SecretsKeysMissing, UnknownSecretsKey
from hookstream.settings import DEFAULT_STACK_ENV

SETTING = "HOOKSTREAM_SECRETS_KEYS"
VERSION = "v1"
NONCE_BYTES = 12  # 96 bits, GCM's own size: random per value, never reused under one key in practice
KEY_BYTES = 32  # AES-256
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_ENVELOPE = re.compile(r"^v1:([A-Za-z0-9_.-]{1,32}):([A-Za-z0-9+/=]+)$")
_HOW = f"give {SETTING} as id:<base64 of 32 random bytes>, newest first, comma-separated (`hookstream secrets new-key`)"


def new_key(key_id: str) -> str:
    """A fresh ``id:base64`` key, as ``HOOKSTREAM_SECRETS_KEYS`` takes it."""
    if not _KEY_ID.match(key_id):
        raise SecretsKeysInvalid(f"key id {key_id!r} must be 1-32 letters, digits, '.', '_' or '-'")
    return f"{key_id}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


def _key_bytes(key_id: str, text: str) -> bytes:
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise SecretsKeysInvalid(f"{SETTING}: key {key_id!r} is not base64; {_HOW}") from None
    if len(raw) != KEY_BYTES:
        raise SecretsKeysInvalid(f"{SETTING}: key {key_id!r} is {len(raw)} bytes: AES-256 needs 32 bytes; {_HOW}")
    return raw


class Keyring:
    """The keys values are sealed with: the first writes, all read. Empty when none is configured: it
    then refuses every use, naming the setting (a service checks at start, see ``require``)."""

    def __init__(self, keys: Sequence[tuple[str, bytes]] = ()) -> None:
        self.ids: tuple[str, ...] = tuple(key_id for key_id, _ in keys)
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys}

    @classmethod
    def parse(cls, text: str) -> Keyring:
        keys: list[tuple[str, bytes]] = []
        for entry in (part.strip() for part in text.split(",")):
            if not entry:
                continue
            key_id, sep, encoded = entry.partition(":")
            key_id = key_id.strip()
            if not sep:
                raise SecretsKeysInvalid(f"{SETTING}: an entry is not id:base64; {_HOW}")
            if not _KEY_ID.match(key_id):
                raise SecretsKeysInvalid(
                    f"{SETTING}: key id {key_id[:40]!r} must be 1-32 letters, digits, '.', '_' or '-'; {_HOW}"
                )
            if any(key_id == known for known, _ in keys):
                raise SecretsKeysInvalid(f"{SETTING}: key id {key_id!r} is given twice; give each key once")
            keys.append((key_id, _key_bytes(key_id, encoded.strip())))
        if not keys:
            raise SecretsKeysInvalid(f"{SETTING} is empty; {_HOW}")
        return cls(keys)

    def __bool__(self) -> bool:
        return bool(self.ids)

    def require(self) -> None:
        """One line naming the setting when no key is configured."""
        if not self.ids:
            raise SecretsKeysMissing(
                f"{SETTING} is not set: partner secrets are stored encrypted with it; {_HOW};"
                " the local stack (`hookstream dev up`) writes a dev key into .hookstream/stack.env"
            )

    @property
    def primary(self) -> str:
        """The id of the key new values are sealed with."""
        self.require()
        return self.ids[0]

    @staticmethod
    def key_id(value: str) -> str | None:
        """The key id an envelope names, or None for anything that is not one (plain text)."""
        found = _ENVELOPE.match(value)
        return found.group(1) if found else None

    def is_current(self, envelope: str) -> bool:
        """Sealed with the key new values are written with (nothing to re-seal)."""
        return self.key_id(envelope) == self.primary

    def seal(self, text: str, where: str) -> str:
        """``text`` encrypted under the newest key, bound to ``where`` (e.g. ``subscriptions.secrets:sub_1``)."""
        key_id = self.primary
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, text.encode(), _associated(key_id, where))
        return f"{VERSION}:{key_id}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, envelope: str, where: str) -> str:
        """The text sealed in ``envelope`` at ``where``; a one-line error if it cannot be."""
        self.require()
        found = _ENVELOPE.match(envelope)
        if found is None:
            raise SealedValueUnreadable(f"{where} is not a {VERSION} envelope (v1:<key id>:<base64>): it was altered")
        key_id, encoded = found.groups()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownSecretsKey(
                f"{where} was sealed with key {key_id!r}, which {SETTING} does not have (it has"
                f" {', '.join(map(repr, self.ids))}): add {key_id!r} after the newest key",
                key_id=key_id,
            )
        raw = base64.b64decode(encoded)
        try:
            return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated(key_id, where)).decode()
        except (InvalidTag, ValueError):
            raise SealedValueUnreadable(
                f"{where} does not decrypt with key {key_id!r}: that key is not the one it was sealed with,"
                " or the value was altered or copied from another row"
            ) from None


def _associated(key_id: str, where: str) -> bytes:
    return f"{VERSION}:{key_id}:{where}".encode()


class SecretsSettings(BaseSettings):
    """``HOOKSTREAM_SECRETS_KEYS``; as for the servers, the environment wins over ``.hookstream/stack.env``.

    Read once at startup (a service's settings hold one) and turned into the ``Keyring`` the stores get."""

    model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_SECRETS_", env_file=DEFAULT_STACK_ENV, extra="ignore")

    keys: SecretStr | None = None

    def keyring(self) -> Keyring:
        """The configured keys; an empty keyring (refusing every use) when none are."""
        text = self.keys.get_secret_value() if self.keys is not None else ""
        return Keyring.parse(text) if text.strip() else Keyring()
