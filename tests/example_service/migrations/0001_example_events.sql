CREATE TABLE example_events (
    service text NOT NULL,
    event_id text NOT NULL,
    key text,
    handled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, event_id)
);
