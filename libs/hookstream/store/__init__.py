"""Data more than one service (or the admin) reads, behind one interface per table family.

``subscriptions`` (partner endpoints), ``deliveries`` (the delivery log and its attempts),
``orders`` (order state and timeline, read side: the normalizer writes them in its own
transactions; ``order_refs``, written by the workflows), ``dead_letters`` (what was redriven).
No module writes these tables with SQL of its own; a service's private tables stay with its own
migrations.
"""
