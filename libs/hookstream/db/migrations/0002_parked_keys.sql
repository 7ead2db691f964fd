-- Per-order ordering across retries: while an event of a key waits in a retry tier (the
-- blocker), later events of that key are parked here and released in order afterwards.
CREATE TABLE parked_keys (
    service          text        NOT NULL,
    key              text        NOT NULL,
    topic            text        NOT NULL,
    partition        integer     NOT NULL,
    blocker_event_id text        NOT NULL,
    parked_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, key)
);
CREATE INDEX parked_keys_partition ON parked_keys (service, topic, partition);

CREATE TABLE parked_records (
    service       text        NOT NULL,
    key           text        NOT NULL,
    seq           bigserial   NOT NULL,
    topic         text        NOT NULL,
    partition     integer     NOT NULL,
    "offset"      bigint      NOT NULL,
    event_id      text        NOT NULL,
    value         bytea,
    headers       text        NOT NULL, -- hookstream.kafka.headers.encode_headers
    timestamp_ms  bigint      NOT NULL,
    parked_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, key, seq),
    UNIQUE (service, topic, partition, "offset")
);

-- Which dead letters were sent back, so `hookstream dlq list` shows what still needs a decision.
CREATE TABLE dlq_redrives (
    service     text        NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    redriven_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, partition, "offset")
);
