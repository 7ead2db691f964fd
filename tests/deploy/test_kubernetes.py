"""deploy/k8s: every overlay renders (`kubectl kustomize`) and validates offline against the Kubernetes
schemas (kubernetes-validate, strict) and KEDA's ScaledObject CRD; the manifests agree with the
services: what they run, the probe ports they listen on, drain time, who takes outside traffic, and
the partition counts that bound each consumer's replicas."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from hookstream import registry
from hookstream.consumer.runtime import ConsumerSettings
from hookstream_schemas import topics

from tests.deploy.manifests import OVERLAYS, named_port, of_kind, rendered

KEDA_CRD = Path(__file__).parent / "schemas" / "keda.sh_scaledobjects.yaml"
KUBERNETES = "1.33.0"  # the oldest release the manifests promise to work on
PARTITIONS = {t.name: t.partitions for t in topics.CONTRACTS}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders_and_validates_against_the_kubernetes_schemas(overlay: str) -> None:
    documents = rendered(overlay)
    assert documents
    for document in documents:
        if document["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: checked against KEDA's own schema below
        kubernetes_validate.validate(document, KUBERNETES, strict=True)


def test_the_keda_scaled_objects_validate_and_stay_within_their_partitions() -> None:
    crd = yaml.safe_load(KEDA_CRD.read_text())
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema = version["schema"]["openAPIV3Schema"]
    scaled = of_kind("overlays/prod", "ScaledObject")
    groups = {g.group: g for g in registry.consumers("kafka:9092", "postgresql://db/hookstream").values()}
    covered = set()
    for name, so in scaled.items():
        jsonschema.validate(so, schema)
        assert so["spec"]["scaleTargetRef"]["name"] == name
        inputs = []
        for trigger in so["spec"]["triggers"]:
            meta = trigger["metadata"]
            group = groups[meta["consumerGroup"]]  # a consumer group hookstream really has
            assert meta["topic"] == group.input_topic, name
            covered.add(group.consumer)
            inputs.append(meta["topic"])
        # More members than partitions would idle: the largest input's partitions bound the replicas.
        assert so["spec"]["maxReplicaCount"] == max(PARTITIONS[t] for t in inputs), name
    # Every consumer that scales with its traffic is covered (admin's alert feed has one partition).
    assert covered == {g.consumer for g in groups.values()} - {"admin-alerts"}


@pytest.mark.parametrize("overlay", ["overlays/dev", "overlays/prod"])
def test_each_deployment_runs_its_service_and_probes_the_port_it_listens_on(overlay: str) -> None:
    specs = registry.discover()
    deployments = of_kind(overlay, "Deployment")
    services, budgets = of_kind(overlay, "Service"), of_kind(overlay, "PodDisruptionBudget")
    drain_s = ConsumerSettings().drain_timeout_ms / 1000
    ours = {name: d for name, d in deployments.items() if name in specs and name != "sandbox"}  # dev: its stand-ins
    assert set(ours) == set(specs) - {"sandbox"}, "a Deployment per service"
    for name, deployment in ours.items():
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        args = container["args"]
        assert args[:2] == ["run", name], (name, args)
        assert "--no-migrate" in args, name  # the setup Job migrates
        assert pod["terminationGracePeriodSeconds"] > drain_s, name  # the drain ends before SIGKILL
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            port = named_port(container, container[probe]["httpGet"]["port"])
            assert port == specs[name].health_port, (name, probe)  # ingress too: its probe port, not 8080
        assert container["resources"]["requests"]["memory"], name
        assert container["resources"]["limits"]["memory"], name
        assert name in services, f"{name}: a Service"
        assert name in budgets, f"{name}: a PodDisruptionBudget"
    jobs = of_kind(overlay, "Job")
    assert jobs["hookstream-setup"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["setup"]
    assert "ingress" in of_kind(overlay, "HorizontalPodAutoscaler")


def test_only_ingress_and_admin_accept_traffic_from_outside() -> None:
    policies = of_kind("overlays/prod", "NetworkPolicy")
    assert policies["hookstream-default-deny-ingress"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    public = [p for p in policies.values() if any("from" not in rule for rule in p["spec"].get("ingress", []))]
    assert [p["metadata"]["name"] for p in public] == ["hookstream-public"]
    [selector] = public[0]["spec"]["podSelector"]["matchExpressions"]
    assert sorted(selector["values"]) == ["admin", "ingress"]
    # Prometheus may scrape every pod's probe port, from the monitoring namespace only.
    [rule] = policies["hookstream-metrics"]["spec"]["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"hookstream.dev/monitoring": "true"}}}]
