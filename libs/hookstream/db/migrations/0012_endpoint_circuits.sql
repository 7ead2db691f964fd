-- Open circuit breakers, per endpoint and delivery instance (each instance keeps its own breaker in
-- memory and writes here only when one opens, a probe fails, or it closes), for the admin's endpoint
-- health. A row is trusted until expires_at: an instance that died with a circuit open stops counting.
CREATE TABLE endpoint_circuits (
    subscription_id text        NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    instance        text        NOT NULL,  -- host:pid of the delivery process
    opened_at       timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (subscription_id, instance)
);
