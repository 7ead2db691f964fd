"""The keyring that seals partner secrets at rest: AES-256-GCM envelopes ``v1:<key id>:<nonce+ciphertext>``."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hookstream.errors import SealedValueUnreadable, SecretsKeysInvalid, SecretsKeysMissing, UnknownSecretsKey
from hookstream.secretbox import Keyring, SecretsSettings, new_key

K1 = "k1:" + base64.b64encode(bytes(range(32))).decode()
K2 = "k2:" + base64.b64encode(bytes(range(32, 64))).decode()
HERE = "subscriptions.secrets:sub_1"


def test_a_value_round_trips_under_a_fresh_nonce_and_names_its_key() -> None:
    keyring = Keyring.parse(K1)
    first, second = keyring.seal("whsec_abc", HERE), keyring.seal("whsec_abc", HERE)
    assert first != second  # a fresh 96-bit nonce per value
    assert first.startswith("v1:k1:")
    assert "whsec_abc" not in first
    assert len(base64.b64decode(first.split(":", 2)[2])) == 12 + len("whsec_abc") + 16  # nonce, text, tag
    assert keyring.open(first, HERE) == keyring.open(second, HERE) == "whsec_abc"
    assert Keyring.key_id(first) == "k1"


def test_a_tampered_value_does_not_open() -> None:
    keyring = Keyring.parse(K1)
    sealed = keyring.seal("whsec_abc", HERE)
    raw = bytearray(base64.b64decode(sealed.split(":", 2)[2]))
    raw[15] ^= 1
    tampered = "v1:k1:" + base64.b64encode(bytes(raw)).decode()
    with pytest.raises(SealedValueUnreadable, match=r"subscriptions\.secrets:sub_1 does not decrypt with key 'k1'"):
        keyring.open(tampered, HERE)


def test_a_value_moved_to_another_row_or_column_does_not_open() -> None:
    keyring = Keyring.parse(K1)
    sealed = keyring.seal("whsec_abc", HERE)
    for elsewhere in ("subscriptions.secrets:sub_2", "subscriptions.headers:sub_1"):
        with pytest.raises(SealedValueUnreadable, match="altered or copied from another row"):
            keyring.open(sealed, elsewhere)


def test_a_value_under_a_key_the_keyring_lacks_names_that_key() -> None:
    sealed = Keyring.parse(K2).seal("whsec_abc", HERE)
    with pytest.raises(UnknownSecretsKey, match=r"sealed with key 'k2'.*HOOKSTREAM_SECRETS_KEYS") as caught:
        Keyring.parse(K1).open(sealed, HERE)
    assert caught.value.key_id == "k2"
    assert "\n" not in str(caught.value)


def test_a_wrong_key_under_the_right_id_does_not_open() -> None:
    sealed = Keyring.parse(K1).seal("whsec_abc", HERE)
    impostor = "k1:" + base64.b64encode(bytes(32)).decode()
    with pytest.raises(SealedValueUnreadable, match="not the one it was sealed with"):
        Keyring.parse(impostor).open(sealed, HERE)


def test_two_keys_the_first_writes_both_read() -> None:
    old = Keyring.parse(K1).seal("whsec_old", HERE)
    rotated = Keyring.parse(f"{K2},{K1}")
    assert rotated.primary == "k2"
    assert rotated.ids == ("k2", "k1")
    assert rotated.open(old, HERE) == "whsec_old"
    assert not rotated.is_current(old)
    fresh = rotated.seal("whsec_new", HERE)
    assert Keyring.key_id(fresh) == "k2"
    assert rotated.is_current(fresh)
    assert Keyring.parse(f"{K1}, {K2}").open(fresh, HERE) == "whsec_new"  # readable while k1 still writes


def test_plain_text_is_not_an_envelope() -> None:
    assert Keyring.key_id("whsec_abc") is None
    assert Keyring.key_id('[{"value": "whsec_abc"}]') is None


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("k1", "id:base64"),
        ("k1:" + base64.b64encode(bytes(16)).decode(), "32 bytes"),
        ("k1:not base64!", "not base64"),
        ("bad id:" + base64.b64encode(bytes(32)).decode(), "key id"),
        (f"{K1},{K1}", "twice"),
    ],
)
def test_a_malformed_setting_is_one_line_saying_what_is_wrong(setting: str, says: str) -> None:
    with pytest.raises(SecretsKeysInvalid, match=says) as caught:
        Keyring.parse(setting)
    assert "\n" not in str(caught.value)
    assert base64.b64encode(bytes(range(32))).decode() not in str(caught.value)  # no key material in errors


def test_no_keys_configured_refuses_to_seal_or_open_saying_what_to_set(tmp_path: Path) -> None:
    keyring = SecretsSettings(_env_file=None, keys=None).keyring()
    assert not keyring
    with pytest.raises(SecretsKeysMissing, match="HOOKSTREAM_SECRETS_KEYS is not set"):
        keyring.seal("whsec_abc", HERE)
    with pytest.raises(SecretsKeysMissing, match="hookstream secrets new-key"):
        keyring.require()


def test_settings_read_the_environment_before_the_stack_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "stack.env"
    env_file.write_text(f"DATABASE_URL=postgresql://file/db\nHOOKSTREAM_SECRETS_KEYS={K1}\n")
    monkeypatch.delenv("HOOKSTREAM_SECRETS_KEYS", raising=False)
    assert SecretsSettings(_env_file=env_file).keyring().ids == ("k1",)
    monkeypatch.setenv("HOOKSTREAM_SECRETS_KEYS", f"{K2},{K1}")
    settings = SecretsSettings(_env_file=env_file)
    assert settings.keyring().ids == ("k2", "k1")
    assert K2.split(":")[1] not in repr(settings)  # the keys never show in a repr or a log


def test_a_new_key_is_a_valid_setting() -> None:
    key = new_key("k3")
    assert key.startswith("k3:")
    assert Keyring.parse(key).primary == "k3"
    assert new_key("k3") != key


def test_the_local_stack_makes_one_dev_key_per_state_folder_and_keeps_it(tmp_path: Path) -> None:
    from hookstream_tools.devstack.stack import StackStatus, dev_secrets_keys

    state = tmp_path / "state"
    assert dev_secrets_keys(state, create=False) is None  # `dev status` before any `dev up` makes none
    made = dev_secrets_keys(state, create=True)
    assert made is not None
    assert Keyring.parse(made).primary == "dev1"
    assert (state / "secrets.keys").stat().st_mode & 0o777 == 0o600
    assert dev_secrets_keys(state, create=True) == made  # `dev down` + `dev up`: the data stays readable
    status = StackStatus("127.0.0.1:1", "postgresql://x/y", False, False, secrets_keys=made)
    assert f"HOOKSTREAM_SECRETS_KEYS={made}" in status.env_lines().splitlines()
