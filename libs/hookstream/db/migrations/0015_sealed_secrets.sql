-- Partner signing secrets and custom headers (often the partner's Authorization) are kept encrypted:
-- AES-256-GCM envelopes `v1:<key id>:<base64 nonce + ciphertext>` written by hookstream.secretbox, with
-- the row and column as associated data. SQL cannot encrypt with the key, so rows written before this
-- migration keep their plain JSON in `secrets`/`headers` until the next write of them, or
-- `hookstream secrets rotate`, seals them; the store reads both forms. Each row holds one form per value.
ALTER TABLE subscriptions
    ADD COLUMN secrets_sealed text,  -- the secrets' JSON ([{value, created_at, expires_at}]), sealed
    ADD COLUMN headers_sealed text,  -- the custom headers' JSON ({name: value}), sealed
    ALTER COLUMN secrets DROP NOT NULL,
    ALTER COLUMN headers DROP NOT NULL,
    ALTER COLUMN headers DROP DEFAULT,
    ADD CONSTRAINT subscriptions_secrets_one_form CHECK (num_nonnulls(secrets, secrets_sealed) = 1),
    ADD CONSTRAINT subscriptions_headers_one_form CHECK (num_nonnulls(headers, headers_sealed) = 1);

-- One value sealed with each key when it is first used: a service whose key has the right id but other
-- bytes is stopped at start even before any subscription is stored (`hookstream.store.subscriptions.KeyCheck`).
CREATE TABLE secrets_canaries (
    key_id     text        PRIMARY KEY,
    sealed     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
