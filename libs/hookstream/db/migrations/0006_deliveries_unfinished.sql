-- Fan-out sends a delivery at once only when its (endpoint, order) has nothing unfinished before it;
-- this partial index keeps that check a lookup among the few deliveries in flight.
CREATE INDEX deliveries_unfinished ON deliveries (subscription_id, order_id) WHERE status IN ('pending', 'retrying');
