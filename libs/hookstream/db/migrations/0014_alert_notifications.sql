-- Alerts are told through an outbox: a change queues one row per notifier in its own transaction, and
-- a dispatcher tells them, retrying a notifier that failed with backoff. A Slack or SMTP outage delays
-- an alert; it does not lose it.
CREATE TABLE alert_notifications (
    id         bigserial   PRIMARY KEY,
    history_id bigint      NOT NULL REFERENCES alert_history (id) ON DELETE CASCADE,
    notifier   text        NOT NULL,  -- slack, pagerduty, email
    state      text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts   integer     NOT NULL DEFAULT 0,
    due_at     timestamptz NOT NULL DEFAULT now(),  -- a claim moves it on: a teller that died gives it back
    last_error text,
    sent_at    timestamptz
);
CREATE INDEX alert_notifications_due ON alert_notifications (due_at) WHERE state = 'pending';
CREATE INDEX alert_notifications_history ON alert_notifications (history_id);

-- Webhooks per channel and minute, counted from order_timeline once a minute has settled, so the
-- volume-drop rule compares the last hour with the same hour yesterday without scanning a day of rows.
CREATE TABLE intake_minutes (
    channel  text        NOT NULL,
    minute   timestamptz NOT NULL,
    webhooks integer     NOT NULL,
    PRIMARY KEY (channel, minute)
);
CREATE TABLE intake_rollup (
    id      boolean     PRIMARY KEY DEFAULT true CHECK (id),
    through timestamptz NOT NULL  -- every minute before this one is counted
);
