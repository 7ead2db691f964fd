-- Invoices and credit notes as PDF documents, numbered without gaps per shop (channel) and kind: a
-- number is taken from invoice_counters in the transaction that stores its document, so a failed
-- attempt gives its number back. Written by the fulfillment workflow, read by the admin and the CLI.
CREATE TABLE invoice_counters (
    shop text    NOT NULL,
    kind text    NOT NULL CHECK (kind IN ('invoice', 'credit_note')),
    next integer NOT NULL DEFAULT 1,
    PRIMARY KEY (shop, kind)
);
CREATE TABLE invoices (
    number     text        PRIMARY KEY,
    shop       text        NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('invoice', 'credit_note')),
    order_id   text        NOT NULL,
    total      text,
    currency   text,
    pdf        bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (order_id, kind)
);
