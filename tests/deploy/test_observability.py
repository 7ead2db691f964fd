"""deploy/observability: the alert rules are valid Prometheus rules and fire as their unit tests say
(Debian's `promtool`, which `.ci/run` installs), and the Grafana dashboard and the rules only use
metrics hookstream exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hookstream.sensors.prometheus import PrometheusSensor

HERE = Path(__file__).resolve().parents[2] / "deploy" / "observability"
METRIC = re.compile(r"\bhookstream_[a-z_]+\b")


def promtool(*args: str) -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("needs promtool: `apt-get install prometheus` (Debian; .ci/run installs it)")
    result = subprocess.run([found, *args], cwd=HERE, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def exported() -> set[str]:
    """Every series name a hookstream /metrics can carry."""
    names = set()
    for family in PrometheusSensor().registry.collect():
        suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_sum", "_count", "_created"]}
        names |= {family.name + s for s in suffixes.get(family.type, [""])}
    return names


def test_the_alert_rules_are_valid_and_fire_as_their_tests_say() -> None:
    assert "SUCCESS: 8 rules found" in promtool("check", "rules", "alerts.yml")
    assert "SUCCESS" in promtool("test", "rules", "alerts.test.yml")
    promtool("check", "config", "prometheus.yml")


def test_rules_and_dashboard_use_only_exported_metrics() -> None:
    known = exported()
    rules = set(METRIC.findall((HERE / "alerts.yml").read_text()))
    assert rules
    assert rules <= known, sorted(rules - known)
    dashboard = json.loads((HERE / "grafana-dashboard.json").read_text())
    assert dashboard["uid"] == "hookstream-overview"
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in METRIC.findall(e)}
    assert used <= known, sorted(used - known)
    # every metric family has a panel
    families = {re.sub(r"_(total|bucket|sum|count|created)$", "", n) for n in known}
    shown = {re.sub(r"_(total|bucket|sum|count|created)$", "", n) for n in used}
    assert families - shown <= {
        "hookstream_consumer_committed_offset",
        "hookstream_records_in",
        "hookstream_records_parked",
        "hookstream_records_released",
    }, families - shown
