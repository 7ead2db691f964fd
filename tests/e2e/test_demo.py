"""`hookstream demo --once` (what `make run` starts): HTTP in at ingress, signed webhooks out at a partner."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from hookstream_tools.devstack.process import free_port


def test_samples_reach_the_partner_signed_and_in_order(
    kafka_bootstrap: str, migrated_database_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": migrated_database_url,
        # The demo records the servers in <state dir>/stack.env: not in the checkout's own .hookstream.
        "HOOKSTREAM_DEV_STATE_DIR": str(tmp_path / "state"),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hookstream",
            "demo",
            "--once",
            "--ingress-port",
            str(free_port()),
            "--partner-port",
            str(free_port()),
            "--admin-port",
            str(admin_port := free_port()),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.count("→ ingress 200") == 6
    assert "The partner received 6 webhooks, every signature verified" in out
    assert re.search(rf"the dashboard: http://127.0.0.1:{admin_port}/ \(sign in with the token hst_\S+\)", out)
    assert f"the admin API: http://127.0.0.1:{admin_port}/api/v1 with the same token" in out
    assert "woocommerce:727: #1 order.created" in out
    assert "b2b-portal:B2B-2026-000317: #1 order.created" in out
    shopify = re.search(r"shopify:5612345678901: (.*)", out)
    assert shopify is not None
    # One order's events in their canonical order; the Stripe payment is that order's second order.paid.
    assert shopify.group(1) == "#1 order.created → #2 order.paid → #3 order.paid → #4 order.fulfilled"
