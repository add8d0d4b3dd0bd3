"""The service registry: services/registry.toml and the start order derived from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.framework._registry import RegistryError, load_registry


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "registry.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _service(name: str, port: int, calls: str = "") -> str:
    return f'[services.{name}]\nport = {port}\nmodule = "m.{name}"\ncalls = [{calls}]\n'


def test_the_repository_registry_lists_the_services_and_the_edge_on_their_ports() -> None:
    """account, auth and merchant listen on 50061, 50062 and 50063; the edge on 8080."""
    registry = load_registry()
    ports = {name: entry.port for name, entry in registry.services.items()}
    assert ports == {"account": 50061, "auth": 50062, "merchant": 50063, "edge": 8080}


def test_the_edge_calls_every_grpc_service_and_reports_health_over_http() -> None:
    """The edge routes to auth, account and merchant, and is ready when /healthz says 200."""
    edge = load_registry().entry("edge")
    assert set(edge.calls) == {"account", "auth", "merchant"}
    assert (edge.http_health, edge.is_http, edge.grpc_services) == ("/healthz", True, ())


def test_grpc_services_have_no_http_health() -> None:
    """Services without `http_health` are waited on through grpc.health.v1."""
    registry = load_registry()
    assert [n for n, e in registry.services.items() if not e.is_http] == [
        "account",
        "auth",
        "merchant",
    ]


def test_an_http_health_that_is_not_a_path_is_refused(tmp_path: Path) -> None:
    """`http_health` must be an absolute path; the error names the key."""
    path = _write(tmp_path, _service("a", 7000) + 'http_health = "healthz"\n')
    with pytest.raises(RegistryError, match=r"services\.a\.http_health: expected a path"):
        load_registry(path)


def test_auth_and_merchant_call_account_and_account_lets_them() -> None:
    """Every `calls` edge of the repository registry is matched by the callee's `callers`."""
    registry = load_registry()
    for name, entry in registry.services.items():
        for callee in entry.calls:
            assert name in registry.entry(callee).callers, f"{callee} does not list {name}"
    assert registry.entry("auth").calls == ("account",)
    assert registry.entry("merchant").calls == ("account",)


def test_every_registry_module_and_grpc_service_is_declared() -> None:
    """Each entry names the module `python -m` runs; each gRPC one its own services."""
    for entry in load_registry().services.values():
        assert entry.module == f"services.{entry.name}"
        assert all(s.startswith(f"paynow.{entry.name}.v1.") for s in entry.grpc_services)
        assert entry.grpc_services or entry.is_http


def test_start_order_puts_account_first_and_the_edge_last() -> None:
    """Account first, then auth and merchant in file order, then the edge that calls them."""
    assert load_registry().start_order() == ["account", "auth", "merchant", "edge"]


def test_start_order_of_a_subset_includes_what_it_calls() -> None:
    """Asking for merchant alone also starts account, first."""
    assert load_registry().start_order(["merchant"]) == ["account", "merchant"]


def test_start_order_follows_transitive_calls(tmp_path: Path) -> None:
    """a calls b, b calls c: c starts first, whatever the file order."""
    text = _service("a", 1, '"b"') + _service("b", 2, '"c"') + _service("c", 3)
    assert load_registry(_write(tmp_path, text)).start_order() == ["c", "b", "a"]


def test_start_order_names_the_cycle(tmp_path: Path) -> None:
    """A cycle in `calls` is an error that spells the cycle out."""
    text = _service("a", 1, '"b"') + _service("b", 2, '"a"')
    registry = load_registry(_write(tmp_path, text))
    with pytest.raises(RegistryError, match=r"cycle in `calls`: a -> b -> a"):
        registry.start_order()


def test_start_order_rejects_a_call_to_an_unknown_service(tmp_path: Path) -> None:
    """A `calls` entry that is not in the registry is named with the service that has it."""
    registry = load_registry(_write(tmp_path, _service("a", 1, '"ghost"')))
    with pytest.raises(RegistryError, match=r"unknown service 'ghost' \(in the `calls` of 'a'\)"):
        registry.start_order()


def test_start_order_rejects_an_unknown_requested_service() -> None:
    """Asking to start a service the registry lacks is an error, not an empty start."""
    with pytest.raises(RegistryError, match="unknown service 'ghost'"):
        load_registry().start_order(["ghost"])


def test_port_of_an_unknown_service_lists_the_known_ones() -> None:
    """port() of a missing name fails with the names that do exist."""
    with pytest.raises(RegistryError, match=r"unknown service 'ghost' \(known: account, auth"):
        load_registry().port("ghost")


def test_two_services_on_one_port_are_refused(tmp_path: Path) -> None:
    """A duplicated port would make one service fail to bind, so loading refuses it."""
    path = _write(tmp_path, _service("a", 7000) + _service("b", 7000))
    with pytest.raises(RegistryError, match="7000 is already the port of 'a'"):
        load_registry(path)


def test_an_entry_without_a_valid_port_is_refused(tmp_path: Path) -> None:
    """The error names the exact key that is wrong."""
    path = _write(tmp_path, '[services.a]\nport = "x"\nmodule = "m"\n')
    with pytest.raises(RegistryError, match=r"services\.a\.port: expected an integer"):
        load_registry(path)


def test_a_missing_registry_file_is_a_clear_error(tmp_path: Path) -> None:
    """The error names the file it could not read."""
    with pytest.raises(RegistryError, match="cannot read the service registry"):
        load_registry(tmp_path / "absent.toml")


def test_callers_may_name_a_service_that_is_not_in_the_registry(tmp_path: Path) -> None:
    """`callers` is not checked against the registry, so a future caller can be listed."""
    path = _write(tmp_path, _service("a", 7000) + 'callers = ["later"]\n')
    registry = load_registry(path)
    assert registry.entry("a").callers == ("later",)
    assert registry.start_order() == ["a"]
