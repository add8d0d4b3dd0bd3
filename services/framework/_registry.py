"""The service registry: which services exist, their ports, and who calls whom.

It is read from `services/registry.toml`, the single file every tool agrees on: settings take
default ports and addresses from it, and the stack supervisor its start order.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["REGISTRY_PATH", "Registry", "RegistryError", "ServiceEntry", "load_registry"]

REGISTRY_PATH = Path(__file__).resolve().parent.parent / "registry.toml"


class RegistryError(Exception):
    """The registry is malformed, names an unknown service, or has a dependency cycle."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServiceEntry:
    """One service as the registry describes it."""

    name: str
    port: int
    module: str
    grpc_services: tuple[str, ...]
    calls: tuple[str, ...]
    callers: tuple[str, ...]
    # The HTTP path answering 200 when the service is ready (the edge's `/healthz`); None
    # for a gRPC service, which reports through grpc.health.v1 instead.
    http_health: str | None = None

    @property
    def is_http(self) -> bool:
        """True for a service whose port speaks HTTP (and whose health is an HTTP GET)."""
        return self.http_health is not None


@dataclasses.dataclass(frozen=True)
class Registry:
    """Every service, in the order the registry file lists them."""

    services: Mapping[str, ServiceEntry]

    def entry(self, name: str) -> ServiceEntry:
        """Return the entry of `name`; raises RegistryError if there is no such service."""
        try:
            return self.services[name]
        except KeyError:
            known = ", ".join(self.services) or "none"
            raise RegistryError(f"unknown service {name!r} (known: {known})") from None

    def port(self, name: str) -> int:
        """Return the registry port of `name`; raises RegistryError for an unknown service."""
        return self.entry(name).port

    def start_order(self, names: Iterable[str] | None = None) -> list[str]:
        """Return `names` (default: all) plus what they call, each after everything it calls.

        Ties keep the registry file's order, so the order is stable from run to run.
        Raises RegistryError for an unknown name (asked for, or in a `calls` list) or a cycle.
        """
        order: list[str] = []
        visiting: list[str] = []  # the current path, to name the cycle when one closes

        def visit(name: str, needed_by: str | None) -> None:
            if name in order:
                return
            if name in visiting:
                cycle = [*visiting[visiting.index(name) :], name]
                raise RegistryError(f"dependency cycle in `calls`: {' -> '.join(cycle)}")
            if name not in self.services:
                where = f" (in the `calls` of {needed_by!r})" if needed_by else ""
                raise RegistryError(f"unknown service {name!r}{where}")
            visiting.append(name)
            for callee in self.services[name].calls:
                visit(callee, name)
            visiting.pop()
            order.append(name)

        for name in self.services if names is None else names:
            visit(name, None)
        return order


def _str_list(raw: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RegistryError(f"{where}.{key}: expected a list of strings")
    return tuple(value)


def _entry(name: str, raw: Any) -> ServiceEntry:
    where = f"services.{name}"
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: expected a table")
    port, module = raw.get("port"), raw.get("module")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise RegistryError(f"{where}.port: expected an integer in 1..65535, got {port!r}")
    if not isinstance(module, str) or not module:
        raise RegistryError(f"{where}.module: expected a module name, got {module!r}")
    http_health = raw.get("http_health")
    if http_health is not None and (
        not isinstance(http_health, str) or not http_health.startswith("/")
    ):
        raise RegistryError(
            f"{where}.http_health: expected a path like /healthz, got {http_health!r}"
        )
    return ServiceEntry(
        name=name,
        port=port,
        module=module,
        grpc_services=_str_list(raw, "grpc_services", where),
        calls=_str_list(raw, "calls", where),
        callers=_str_list(raw, "callers", where),
        http_health=http_health,
    )


def load_registry(path: Path | None = None) -> Registry:
    """Read the registry (default `services/registry.toml`).

    Raises RegistryError if the file is missing, is not valid TOML, an entry lacks a port or
    module, or two services share a port. Unknown names in `calls` and cycles are reported
    by `Registry.start_order`; `callers` may name services that join later.
    """
    path = REGISTRY_PATH if path is None else path
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RegistryError(f"cannot read the service registry {path}: {exc}") from exc
    tables = document.get("services", {})
    if not isinstance(tables, dict):
        raise RegistryError(f"{path}: `services` must be a table of services")
    services = {name: _entry(name, raw) for name, raw in tables.items()}
    owners: dict[int, str] = {}
    for entry in services.values():
        if entry.port in owners:
            raise RegistryError(
                f"services.{entry.name}.port: {entry.port} is already the port of "
                f"{owners[entry.port]!r}"
            )
        owners[entry.port] = entry.name
    return Registry(services)
