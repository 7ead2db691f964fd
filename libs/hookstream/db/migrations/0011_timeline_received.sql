-- When and through which channel each event came in, so the admin's overview can show webhooks/s
-- per channel and webhook → partner latency from the store, without reading Kafka.
ALTER TABLE order_timeline ADD COLUMN channel text, ADD COLUMN received_at timestamptz;
CREATE INDEX order_timeline_received_at ON order_timeline (received_at);
