-- The admin's built-in alerting: each condition's current state (one row per rule and subject, so
-- several admin replicas notify a change once), and the history of what fired and resolved.
CREATE TABLE alerts (
    rule        text        NOT NULL,  -- e.g. dead_letters
    subject     text        NOT NULL,  -- what it is about: a consumer, an endpoint
    firing      boolean     NOT NULL,
    summary     text        NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    notified_at timestamptz,           -- when its firing was last told (the cooldown runs from here)
    told        boolean     NOT NULL DEFAULT false,  -- the current firing was told: its resolution will be
    PRIMARY KEY (rule, subject)
);

CREATE TABLE alert_history (
    id       bigserial   PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    rule     text        NOT NULL,
    subject  text        NOT NULL,
    kind     text        NOT NULL CHECK (kind IN ('fired', 'resolved')),
    summary  text        NOT NULL,
    notified text[]      NOT NULL DEFAULT '{}'  -- the channels told; empty inside a cooldown
);
CREATE INDEX alert_history_at ON alert_history (at);
