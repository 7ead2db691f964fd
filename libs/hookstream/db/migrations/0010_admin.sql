-- The admin API's bearer tokens (only their SHA-256 is kept) and the audit log of every write made through it.
CREATE TABLE api_tokens (
    id              text        PRIMARY KEY,            -- tok_…, shown in lists and the audit log
    name            text        NOT NULL,
    scope           text        NOT NULL CHECK (scope IN ('read', 'write', 'admin', 'partner')),
    subscription_id text        REFERENCES subscriptions (id) ON DELETE CASCADE,
    token_hash      bytea       NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz,
    revoked_at      timestamptz,
    CHECK ((scope = 'partner') = (subscription_id IS NOT NULL))
);

CREATE TABLE audit_log (
    id         bigserial   PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text        NOT NULL,  -- "tok_…:name", or "cli:<user>"
    action     text        NOT NULL,  -- e.g. subscription.update
    target     text        NOT NULL,  -- what it was done to, e.g. the subscription's id
    before     jsonb,
    after      jsonb
);
CREATE INDEX audit_log_target ON audit_log (target, at);
