"""deploy/compose.yaml against the Compose specification's JSON schema and the registry."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from services.framework import load_registry

from .conftest import DEPLOY, VENV_BIN


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    # The schema vendored in check-jsonschema: nothing is fetched.
    return subprocess.run(
        [str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))
    return document


def test_compose_file_matches_the_compose_specification() -> None:
    """compose.yaml validates against the compose-spec schema."""
    result = _check(DEPLOY / "compose.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_an_unknown_depends_on_condition(tmp_path: Path) -> None:
    """The check bites: `condition: healthy` (not service_healthy) is refused."""
    broken = tmp_path / "compose.yaml"
    text = (DEPLOY / "compose.yaml").read_text("utf-8")
    broken.write_text(text.replace("condition: service_healthy", "condition: healthy", 1))
    assert _check(broken).returncode != 0


def test_every_registry_service_runs_in_the_stack() -> None:
    """Each service of services/registry.toml is a compose service of the same name."""
    assert set(load_registry().services) <= set(_compose()["services"])


def test_the_edge_is_published_on_8080() -> None:
    """The REST API is the only port published to the host."""
    published = {name: service.get("ports", []) for name, service in _compose()["services"].items()}
    assert {name: ports for name, ports in published.items() if ports} == {"edge": ["8080:8080"]}


def test_each_service_starts_after_its_callees_are_healthy() -> None:
    """depends_on waits for service_healthy on every service the registry says it calls."""
    services = _compose()["services"]
    for entry in load_registry().services.values():
        depends = services[entry.name].get("depends_on", {})
        for callee in entry.calls:
            assert depends[callee] == {"condition": "service_healthy"}, (entry.name, callee)


def test_each_service_has_its_own_database() -> None:
    """No two services share a database URL."""
    urls = [
        value
        for service in _compose()["services"].values()
        for key, value in service.get("environment", {}).items()
        if key.endswith("_DATABASE_URL")
    ]
    assert len(urls) == len(set(urls)) == 3
