-- Partner subscriptions for outbound delivery (managed by `hookstream subscriptions` and the admin API).
CREATE TABLE subscriptions (
    id               text        PRIMARY KEY,
    name             text        NOT NULL,
    url              text        NOT NULL,
    event_types      text[]      NOT NULL,
    secrets          jsonb       NOT NULL, -- [{value, created_at, expires_at}], newest signs first
    content_type     text        NOT NULL CHECK (content_type IN ('json', 'xml')),
    headers          jsonb       NOT NULL DEFAULT '{}',
    timeout_ms       integer     NOT NULL,
    rate_limit_per_s real,
    enabled          boolean     NOT NULL DEFAULT true,
    disabled_reason  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
