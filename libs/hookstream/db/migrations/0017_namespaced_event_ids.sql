-- Event ids are namespaced by channel ('<channel>:<id>') from the canonical event on. The normalizer's
-- markers of the events it handled before are copied under their namespaced id, so a webhook its
-- channel sends again after the upgrade is still a duplicate. Every event that passed the dedupe is on
-- its order's timeline, with its channel (or, before migration 0011 recorded it, the order's channel).
-- The old markers stay until the dedupe sweeper ages them out; events already published keep their ids.
INSERT INTO processed_events (service, event_id, processed_at)
SELECT p.service, coalesce(t.channel, split_part(t.order_id, ':', 1)) || ':' || p.event_id, p.processed_at
FROM processed_events p
JOIN order_timeline t ON t.event_id = p.event_id
ON CONFLICT DO NOTHING;
