-- Outbound deliveries: one row per (subscription, canonical event), and every attempt made for it.
CREATE TABLE deliveries (
    id              text        PRIMARY KEY,
    subscription_id text        NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    event_id        text        NOT NULL,
    order_id        text        NOT NULL,
    event_type      text        NOT NULL,
    webhook_id      text        NOT NULL, -- stable across retries, so partners can dedupe
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'retrying', 'delivered', 'failed', 'skipped')),
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    value           bytea       NOT NULL, -- the canonical record, so a delivery can be retried by hand
    headers         text        NOT NULL, -- its Kafka headers (JSON, see hookstream.kafka.outbox)
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX deliveries_subscription_status ON deliveries (subscription_id, status, created_at);

CREATE TABLE delivery_attempts (
    delivery_id      text        NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt          integer     NOT NULL,
    attempted_at     timestamptz NOT NULL DEFAULT now(),
    status_code      integer,
    latency_ms       integer     NOT NULL,
    response_excerpt text,
    error            text,
    PRIMARY KEY (delivery_id, attempt, attempted_at)
);
CREATE INDEX delivery_attempts_at ON delivery_attempts (attempted_at);

ALTER TABLE subscriptions ADD COLUMN failing_since timestamptz;
