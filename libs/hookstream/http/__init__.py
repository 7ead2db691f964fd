"""HTTP: the probe server every service runs, and the outbound client parts (SSRF guard, payload rendering)."""
