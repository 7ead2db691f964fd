-- Risk assessments: one per order (written by the risk service), its verdict changed by operators
-- (`hookstream orders release|cancel`, later the admin). Velocity and first-time rules read the
-- earlier orders of the same customer email.
CREATE TABLE order_risk (
    order_id    text        PRIMARY KEY,
    email       text,
    total       numeric,
    occurred_at timestamptz NOT NULL,
    score       integer     NOT NULL,
    reasons     jsonb       NOT NULL,
    verdict     text        NOT NULL CHECK (verdict IN ('cleared', 'held', 'released', 'cancelled')),
    decided_by  text        NOT NULL,
    assessed_at timestamptz NOT NULL DEFAULT now(),
    decided_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_risk_email ON order_risk (email, occurred_at);
CREATE INDEX order_risk_held ON order_risk (decided_at) WHERE verdict = 'held';
