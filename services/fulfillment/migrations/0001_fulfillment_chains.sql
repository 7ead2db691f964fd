-- One fulfillment chain per order, started by its first order.paid (a second payment signal for the
-- same order, e.g. Stripe's after Shopify's, is an update, not a second chain).
CREATE TABLE fulfillment_chains (
    service       text        NOT NULL,
    order_id      text        NOT NULL,
    paid_event_id text        NOT NULL,
    paid_at       timestamptz NOT NULL,
    order_data    jsonb       NOT NULL, -- what the invoice and the warehouse need, as of the payment
    state         text        NOT NULL CHECK (state IN ('running', 'waiting_for_risk', 'done', 'cancelled')),
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, order_id)
);
CREATE INDEX fulfillment_chains_waiting ON fulfillment_chains (service, updated_at) WHERE state = 'waiting_for_risk';
