"""deploy/k8s/: valid for Kubernetes, rendered by Kustomize, and current with the registry."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from services.framework import load_registry

from .conftest import DEPLOY, GENERATOR, K8S, REGISTRY, VENV_BIN

# The oldest version the manifests support (the preStop `sleep` action is on by default
# from 1.30) and the newest kubernetes-validate ships schemas for.
VERSIONS = ["1.30", kubernetes_validate.latest_version()]
MANIFESTS = sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text("utf-8")) if d]


@functools.cache
def _render() -> list[dict[str, Any]]:
    # Once per session: the tests only read what Kustomize rendered.
    result = subprocess.run(
        [str(VENV_BIN / "kubectl"), "kustomize", str(K8S)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def _generator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *args], capture_output=True, text=True, check=False
    )


def _find(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = (d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name)
    return found


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(K8S)))
def test_manifest_is_valid_kubernetes(path: Path, version: str) -> None:
    """Every document of every manifest validates strictly (no unknown field)."""
    for document in _documents(path):
        kubernetes_validate.validate(document, version, strict=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_kustomize_build_is_valid_kubernetes(version: str) -> None:
    """What `kubectl kustomize deploy/k8s` renders, namespace set, validates strictly."""
    for document in _render():
        kubernetes_validate.validate(document, version, strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_templates() -> None:
    """Nothing is left out of the base, and placeholder Secrets are never applied."""
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text("utf-8"))["resources"])
    on_disk = {str(p.relative_to(K8S)) for p in MANIFESTS}
    assert listed == on_disk - {"secrets.template.yaml"}


def test_rendered_base_puts_everything_in_the_paynow_namespace() -> None:
    """Every namespaced object lands in `paynow`, which the DNS names in the configs assume."""
    namespaces = {d["metadata"].get("namespace") for d in _render() if d["kind"] != "Namespace"}
    assert namespaces == {"paynow"}


def test_generator_check_passes_on_the_tree() -> None:
    """deploy/ is what the generator writes for the current registry."""
    result = _generator("--check")
    assert result.returncode == 0, result.stderr


def test_a_service_added_to_the_registry_without_manifests_fails_the_check(
    tmp_path: Path,
) -> None:
    """`--check` names a new registry service that deploy/ does not cover."""
    registry = tmp_path / "registry.toml"
    registry.write_text(
        REGISTRY.read_text("utf-8")
        + '\n[services.ledger]\nport = 50064\nmodule = "services.ledger"\n'
        'grpc_services = ["paynow.ledger.v1.LedgerService"]\ncalls = []\ncallers = ["edge"]\n',
        encoding="utf-8",
    )
    deploy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, deploy)
    result = _generator("--check", "--registry", str(registry), "--deploy-dir", str(deploy))
    assert result.returncode == 1
    assert "service 'ledger': " in result.stderr


def test_a_removed_service_leaves_stale_manifests_that_fail_the_check(tmp_path: Path) -> None:
    """Manifests of a service no longer in the registry are reported by name."""
    deploy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, deploy)
    shutil.copytree(deploy / "k8s" / "account", deploy / "k8s" / "ledger")
    result = _generator("--check", "--deploy-dir", str(deploy))
    assert "service 'ledger': " in result.stderr


def test_grpc_services_are_headless_for_client_side_balancing() -> None:
    """Every gRPC Service has clusterIP None; only the HTTP edge gets a virtual IP."""
    documents = _render()
    for entry in load_registry().services.values():
        service = _find(documents, "Service", entry.name)
        assert (service["spec"].get("clusterIP") == "None") is (not entry.is_http), entry.name


def test_callers_reach_a_service_through_the_dns_round_robin_target() -> None:
    """Each caller's address for a callee is a dns:/// target on the callee's port."""
    documents = _render()
    registry = load_registry()
    for entry in registry.services.values():
        data = _find(documents, "ConfigMap", f"{entry.name}-config")["data"]
        for callee in entry.calls:
            prefix = "PAYNOW_EDGE_" if entry.is_http else f"PAYNOW_{entry.name.upper()}_"
            assert data[f"{prefix}{callee.upper()}_ADDR"] == (
                f"dns:///{callee}.paynow.svc.cluster.local:{registry.port(callee)}"
            )


def test_network_policies_admit_only_the_registry_callers() -> None:
    """A service's service port admits exactly the pods of its registry `callers`."""
    documents = _render()
    for entry in load_registry().services.values():
        policy = _find(documents, "NetworkPolicy", entry.name)
        admitted = {
            name
            for rule in policy["spec"]["ingress"]
            if {"protocol": "TCP", "port": entry.port} in rule["ports"]
            for peer in rule["from"]
            if "podSelector" in peer
            for expression in peer["podSelector"]["matchExpressions"]
            for name in expression["values"]
        }
        assert admitted == set(entry.callers), entry.name


def test_termination_grace_covers_the_drain_grace_period() -> None:
    """The pod's termination grace exceeds preStop plus PAYNOW_<S>_GRACE_PERIOD_S."""
    documents = _render()
    for entry in load_registry().services.values():
        if entry.is_http:
            continue
        pod = _find(documents, "Deployment", entry.name)["spec"]["template"]["spec"]
        grace = float(
            _find(documents, "ConfigMap", f"{entry.name}-config")["data"][
                f"PAYNOW_{entry.name.upper()}_GRACE_PERIOD_S"
            ]
        )
        pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pod["terminationGracePeriodSeconds"] > pre_stop + grace, entry.name


def test_grpc_services_probe_the_health_service_on_their_port() -> None:
    """Readiness and liveness of a gRPC service are grpc.health.v1 checks on its port."""
    documents = _render()
    for entry in load_registry().services.values():
        if entry.is_http:
            continue
        container = _find(documents, "Deployment", entry.name)["spec"]["template"]["spec"][
            "containers"
        ][0]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == entry.port, (entry.name, probe)


def test_every_pod_runs_non_root_on_a_read_only_root_filesystem() -> None:
    """Pods run as non-root and every container's root filesystem is read-only."""
    for document in _render():
        if document["kind"] != "Deployment":
            continue
        pod = document["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"] + pod.get("initContainers", []):
            assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_edge_is_behind_an_ingress_and_an_autoscaler() -> None:
    """Every HTTP service gets an Ingress to its Service and an HPA on its Deployment."""
    documents = _render()
    for entry in load_registry().services.values():
        if not entry.is_http:
            continue
        ingress = _find(documents, "Ingress", entry.name)
        (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
        assert path["backend"]["service"]["name"] == entry.name
        hpa = _find(documents, "HorizontalPodAutoscaler", entry.name)
        assert hpa["spec"]["scaleTargetRef"]["name"] == entry.name


def test_secret_templates_cover_every_secret_a_pod_references() -> None:
    """Each Secret named by a pod has a template, so docs/operations.md lists them all."""
    templates = {d["metadata"]["name"] for d in _documents(K8S / "secrets.template.yaml")}
    referenced: set[str] = set()
    for document in _render():
        if document["kind"] != "Deployment":
            continue
        pod = document["spec"]["template"]["spec"]
        for container in pod["containers"] + pod.get("initContainers", []):
            for env in container.get("env", []):
                referenced.add(env["valueFrom"]["secretKeyRef"]["name"])
        referenced |= {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert referenced == templates
