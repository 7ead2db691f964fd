"""Ingress: verified channel webhooks, published durably to ``webhooks.raw.v1``."""
