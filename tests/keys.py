"""The secrets key every test runs with: set in the environment by conftest (so the services a test
starts as processes have it too) and used by tests that build stores themselves."""

from __future__ import annotations

import base64
import hashlib

from hookstream.secretbox import Keyring

# A fixed test key: not secret, only the same for the test and the processes it starts.
TEST_SECRETS_KEYS = "test1:" + base64.b64encode(hashlib.sha256(b"hookstream tests").digest()).decode()
KEYRING = Keyring.parse(TEST_SECRETS_KEYS)
