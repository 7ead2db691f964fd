-- Workflow steps: each finished step of an event is recorded with its result, in the transaction
-- that writes the step's local effects, so a retry resumes at the failed step and never repeats a
-- finished one. (An external call made by a step carries an Idempotency-Key of the same triple, so a
-- crash between the call and this record is answered by the external system without a second effect.)
CREATE TABLE workflow_steps (
    service     text        NOT NULL,
    event_id    text        NOT NULL,
    step        text        NOT NULL,
    result      jsonb       NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, event_id, step)
);
CREATE INDEX workflow_steps_finished_at ON workflow_steps (finished_at);

-- What external systems call an order (the CRM's record id, the warehouse's fulfillment id, ...):
-- written by the workflow that got the answer, read by later steps, other services and the admin.
CREATE TABLE order_refs (
    order_id   text        NOT NULL,
    system     text        NOT NULL,
    ref        text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, system)
);
