"""Outbound webhooks: payload rendering (JSON/XML) and the SSRF guard."""
