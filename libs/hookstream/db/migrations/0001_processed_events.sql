-- Idempotency markers: a consumer writes (service, event_id) in the same transaction as
-- its effect, so a redelivered or replayed event is recognised and skipped.
CREATE TABLE processed_events (
    service      text        NOT NULL,
    event_id     text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, event_id)
);
CREATE INDEX processed_events_processed_at ON processed_events (processed_at);
