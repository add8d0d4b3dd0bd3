"""Golden HTTP exchanges of every route the edge serves, replayed against the whole stack.

The registry's services and the edge run as real processes (start_stack on free ports, with
a temporary data directory), started once for the module and ready when the edge's
/healthz answers. Requests go through http.client in worker threads, so the event loop
keeps draining the services' output meanwhile.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.framework._registry import load_registry
from services.framework._stack import free_ports, start_stack

from .exchange import Schema, short_name
from .exchange.http import (
    REST_DIR,
    HttpExchange,
    Route,
    golden_path,
    load_golden,
    replay_http,
    routes,
)

pytestmark = pytest.mark.e2e

SCHEMA = Schema.load()
ROUTES = routes(SCHEMA)
ROUTED_RPCS = {route.rpc for route in ROUTES}
GOLDEN_FILES = sorted(REST_DIR.glob("*/*.json"))
EXCHANGES = [exchange for path in GOLDEN_FILES for exchange in load_golden(path).exchanges]


def _route_id(route: Route) -> str:
    return f"{route.rpc.rpartition('.')[2]} {route.verb} {route.template}"


@pytest.fixture(scope="module")
async def edge(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    environ = dict(os.environ)
    environ.pop("PAYNOW_INTERNAL_TOKEN", None)  # the stack makes a fresh one
    ports = free_ports(load_registry().services)
    data_dir = tmp_path_factory.mktemp("paynow")
    async with start_stack(data_dir, ports=ports, env=environ) as stack:
        yield stack.processes["edge"].address


@pytest.mark.parametrize("route", ROUTES, ids=_route_id)
def test_every_route_has_a_golden_exchange(route: Route) -> None:
    """Each HTTP binding of an annotated RPC is called by a golden exchange of that RPC."""
    path = golden_path(route.rpc)
    relative = path.relative_to(REST_DIR.parent)
    assert path.exists(), f"{route.rpc} has no REST golden: add {relative}"
    calls = [exchange.call for exchange in load_golden(path).exchanges]
    assert any(route.matches(call.method, call.path) for call in calls), (
        f"{route.rpc}: no exchange in {relative} calls {route.verb} {route.template}"
    )


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_golden_file_is_named_after_a_routed_rpc(path: Path) -> None:
    """A golden file describes the routed RPC it is named after, so none is stale or misfiled."""
    golden = load_golden(path)
    assert golden.rpc in ROUTED_RPCS, f"{path.name}: {golden.rpc} has no route at the edge"
    assert golden_path(golden.rpc) == path


@pytest.mark.parametrize("exchange", EXCHANGES, ids=lambda e: f"{short_name(e.rpc)}: {e.name}")
def test_every_golden_request_calls_a_route_of_its_rpc(exchange: HttpExchange) -> None:
    """The request an exchange is about goes to one of its own RPC's bindings."""
    call = exchange.call
    bindings = [route for route in ROUTES if route.rpc == exchange.rpc]
    assert any(route.matches(call.method, call.path) for route in bindings), (
        f"{exchange.source} ({exchange.name}): {call.method} {call.path} is not a route of "
        f"{exchange.rpc} ({', '.join(f'{r.verb} {r.template}' for r in bindings)})"
    )


@pytest.mark.parametrize("exchange", EXCHANGES, ids=lambda e: f"{short_name(e.rpc)}: {e.name}")
async def test_the_edge_answers_as_the_golden_shows(exchange: HttpExchange, edge: str) -> None:
    """The edge, in front of the real services, answers each golden exchange as written."""
    await replay_http(exchange, edge, SCHEMA, label=f"{short_name(exchange.rpc)} ({exchange.name})")
