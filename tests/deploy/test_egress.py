"""Egress (security finding 9): every hookstream pod is under an egress policy; the pods that call URLs
outside (tests/deploy/reads.py: delivery, admin and the workflows that call a system) reach the
internet but no private, shared, loopback, link-local or metadata address; the others (ingress,
normalizer, the setup Job) reach only DNS, Kafka, PostgreSQL (if they read DATABASE_URL) and the
monitoring namespace's trace collector. The selectors are evaluated as Kubernetes does."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from tests.deploy.manifests import OVERLAYS, channels_toml, named_port, of_kind, pods
from tests.deploy.reads import SETUP, outbound, reads

# What an outbound pod must never reach, whatever a URL resolves to.
FORBIDDEN = [
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",  # link-local, cloud metadata at 169.254.169.254
        "100.64.0.0/10",
        "127.0.0.0/8",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
        "fd00:ec2::254/128",
    )
]
METADATA = [ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "127.0.0.1", "::1")]
INTERNET = [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
DNS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
SERVERS = {"kafka": ("hookstream-egress-kafka", 9092), "postgres": ("hookstream-egress-postgres", 5432)}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector against labels, as the API server evaluates it."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels[key] not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]
        if not ok:
            return False
    return True


def egress_policies(overlay: str, labels: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The policies that isolate a pod's egress (same namespace: one namespace per overlay)."""
    return {
        name: policy
        for name, policy in of_kind(overlay, "NetworkPolicy").items()
        if "Egress" in policy["spec"].get("policyTypes", []) and selects(policy["spec"]["podSelector"], labels)
    }


def rules(overlay: str, labels: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    return [(n, r) for n, p in egress_policies(overlay, labels).items() for r in p["spec"].get("egress", [])]


def ip_blocks(overlay: str, labels: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    return [(n, peer["ipBlock"]) for n, r in rules(overlay, labels) for peer in r["to"] if "ipBlock" in peer]


def _ours(overlay: str) -> dict[str, dict[str, Any]]:
    found = pods(overlay)
    assert SETUP in found, sorted(found)
    assert outbound() <= set(found), sorted(found)
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_under_an_egress_policy_that_names_its_destinations(overlay: str) -> None:
    for name, template in _ours(overlay).items():
        labels = template["metadata"]["labels"]
        assert "hookstream-default-deny-egress" in egress_policies(overlay, labels), name
        for policy, rule in rules(overlay, labels):
            # A rule without `to` (or with an empty one) lets the pod reach anything on its ports.
            assert rule.get("to"), f"{name}: {policy} has a rule open to every destination"
            for peer in rule["to"]:
                # An empty namespaceSelector with no pod selector is every pod of the cluster.
                assert peer.get("namespaceSelector") != {} or peer.get("podSelector"), (name, policy, peer)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_reaches_dns_kafka_and_only_if_it_reads_one_a_database(overlay: str) -> None:
    channels = channels_toml(overlay)
    for name, template in _ours(overlay).items():
        labels = template["metadata"]["labels"]
        to_dns = [r for _, r in rules(overlay, labels) if DNS in r["to"]]
        assert {(p["protocol"], p["port"]) for r in to_dns for p in r["ports"]} >= {("UDP", 53), ("TCP", 53)}, name
        policies = egress_policies(overlay, labels)
        assert "hookstream-egress-kafka" in policies, name
        database = "DATABASE_URL" in reads(name, channels)
        assert ("hookstream-egress-postgres" in policies) == database, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_outbound_pods_reach_the_internet_but_no_private_link_local_or_metadata_address(overlay: str) -> None:
    for name in outbound():
        labels = _ours(overlay)[name]["metadata"]["labels"]
        blocks = ip_blocks(overlay, labels)
        cidrs = {ipaddress.ip_network(b["cidr"]) for _, b in blocks}
        assert set(INTERNET) <= cidrs, f"{name} cannot reach the internet: {cidrs}"
        for policy, block in blocks:
            cidr = ipaddress.ip_network(block["cidr"])
            excepted = [ipaddress.ip_network(e) for e in block.get("except", [])]
            # A range that takes in a forbidden one must except it whole (a server's own CIDR, e.g. a
            # managed PostgreSQL's subnet an overlay adds, is narrower and may be private) ...
            for forbidden in FORBIDDEN:
                if forbidden.version == cidr.version and forbidden.subnet_of(cidr):
                    covered = any(forbidden.subnet_of(e) for e in excepted if e.version == forbidden.version)
                    assert covered, f"{name}: {policy} lets it reach {forbidden} ({cidr} except {excepted})"
            # ... and no range, however narrow, reaches a metadata endpoint or loopback.
            for address in METADATA:
                if address.version == cidr.version and address in cidr:
                    assert any(address in e for e in excepted), f"{name}: {policy} lets it reach {address}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_other_pods_reach_only_dns_kafka_postgres_and_traces(overlay: str) -> None:
    internal = set(_ours(overlay)) - outbound()
    assert {"ingress", "normalizer", SETUP} <= internal
    allowed = {
        "hookstream-default-deny-egress",
        "hookstream-egress-dns",
        "hookstream-egress-kafka",
        "hookstream-egress-postgres",
        "hookstream-egress-telemetry",
    }
    for name in internal:
        labels = _ours(overlay)[name]["metadata"]["labels"]
        assert "hookstream-default-deny-egress" in egress_policies(overlay, labels), name
        assert set(egress_policies(overlay, labels)) <= allowed, name
        for policy, block in ip_blocks(overlay, labels):
            assert ipaddress.ip_network(block["cidr"]).prefixlen > 0, f"{name}: {policy} opens {block['cidr']}"


def test_the_dev_servers_are_what_the_egress_policies_select() -> None:
    deployments = of_kind("overlays/dev", "Deployment")
    policies = of_kind("overlays/dev", "NetworkPolicy")
    for server, (policy, port) in SERVERS.items():
        template = deployments[server]["spec"]["template"]
        [rule] = policies[policy]["spec"]["egress"]
        assert any(selects(peer["podSelector"], template["metadata"]["labels"]) for peer in rule["to"]), server
        [container] = template["spec"]["containers"]
        assert {(p["protocol"], p["port"]) for p in rule["ports"]} == {("TCP", named_port(container, server))}
        assert named_port(container, server) == port


@pytest.mark.parametrize("overlay", ["overlays/dev", "overlays/prod"])
def test_prometheus_scrapes_each_pod_on_its_probe_port_and_may_reach_it(overlay: str) -> None:
    """The annotation names the port the probes use (ingress's too, wherever its probes move), and the
    hookstream-metrics policy admits Prometheus there."""
    [rule] = of_kind(overlay, "NetworkPolicy")["hookstream-metrics"]["spec"]["ingress"]
    admitted = {p["port"] for p in rule["ports"]}
    for name, template in _ours(overlay).items():
        if name == SETUP:
            continue
        [container] = template["spec"]["containers"]
        probe = container["readinessProbe"]["httpGet"]["port"]
        assert template["metadata"]["annotations"]["prometheus.io/port"] == str(named_port(container, probe)), name
        names = {p["name"] for p in container["ports"] if p["containerPort"] == named_port(container, probe)}
        assert names & admitted or named_port(container, probe) in admitted, name
