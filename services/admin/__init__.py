"""The admin API: subscriptions, deliveries, orders and the audit log, behind scoped bearer tokens."""
