-- The normalizer's order state: one row per order, its event timeline, events held until
-- their prerequisites arrive, conflicts surfaced for people, and the transactional outbox.
CREATE TABLE orders (
    order_id          text        PRIMARY KEY,
    channel           text        NOT NULL,
    status            text,
    created           boolean     NOT NULL DEFAULT false,
    paid              boolean     NOT NULL DEFAULT false,
    fulfilled         boolean     NOT NULL DEFAULT false,
    cancelled         boolean     NOT NULL DEFAULT false,
    sequence          bigint      NOT NULL DEFAULT 0,
    source_updated_at timestamptz,
    snapshot          jsonb       NOT NULL DEFAULT '{}', -- newest customer, items, addresses, amounts
    tracking          jsonb       NOT NULL DEFAULT '[]', -- every tracking number seen, whatever its order
    held              integer     NOT NULL DEFAULT 0,
    first_seen_at     timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_status ON orders (status);

CREATE TABLE order_timeline (
    order_id    text        NOT NULL,
    event_id    text        NOT NULL,
    type        text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    outcome     text        NOT NULL CHECK (outcome IN ('applied', 'held', 'stale', 'conflict', 'ignored')),
    sequence    bigint,
    detail      text,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, event_id)
);

CREATE TABLE held_events (
    order_id    text        NOT NULL,
    event_id    text        NOT NULL,
    type        text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    waits_for   text        NOT NULL,
    event       jsonb       NOT NULL,
    held_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, event_id)
);

CREATE TABLE order_conflicts (
    order_id    text        NOT NULL,
    event_id    text        NOT NULL,
    type        text        NOT NULL,
    reason      text        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    PRIMARY KEY (order_id, event_id)
);

CREATE TABLE outbox (
    id            bigserial   PRIMARY KEY,
    service       text        NOT NULL,
    topic         text        NOT NULL,
    key           text        NOT NULL,
    event_id      text        NOT NULL,
    value         bytea       NOT NULL,
    headers       text        NOT NULL, -- JSON [[name, value as latin-1]]: one cheap parameter per row
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (service, event_id)
);
CREATE INDEX outbox_service_id ON outbox (service, id);
