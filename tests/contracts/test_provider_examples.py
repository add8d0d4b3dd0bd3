"""Every RPC's example exchanges, replayed against the real services started in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .exchange import (
    EXAMPLES_DIR,
    Exchange,
    Providers,
    Schema,
    load_example,
    provider_of,
    provider_stack,
    replay,
    short_name,
)

SCHEMA = Schema.load()
RPCS = sorted(SCHEMA.rpcs())
EXAMPLE_FILES = sorted(EXAMPLES_DIR.glob("*/*.json"))


def example_path(rpc: str) -> Path:
    """Where an RPC's examples live: examples/<service>/<Rpc>.json."""
    return EXAMPLES_DIR / provider_of(rpc) / f"{short_name(rpc)}.json"


def _exchanges() -> list[Exchange]:
    return [exchange for path in EXAMPLE_FILES for exchange in load_example(path).exchanges]


EXCHANGES = _exchanges()


@pytest.fixture(scope="module")
async def providers(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Providers]:
    async with provider_stack(tmp_path_factory.mktemp("providers")) as running:
        yield running


@pytest.mark.parametrize("rpc", RPCS)
def test_every_rpc_has_an_example(rpc: str) -> None:
    """An RPC declared in a proto has an example file of its own."""
    path = example_path(rpc)
    assert path.exists(), f"{rpc} has no example: add {path.relative_to(EXAMPLES_DIR.parent)}"


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_example_names_the_rpc_of_its_file(path: Path) -> None:
    """An example file describes the RPC it is named after, so none is stale or misfiled."""
    example = load_example(path)
    assert example.rpc in RPCS, f"{path.name}: {example.rpc} is not in the protos"
    assert example_path(example.rpc) == path


@pytest.mark.parametrize(
    "exchange", EXCHANGES, ids=[f"{e.source.removesuffix('.json')}: {e.name}" for e in EXCHANGES]
)
async def test_provider_answers_as_the_example_shows(
    exchange: Exchange, providers: Providers
) -> None:
    """The real service answers each example exchange as written."""
    await replay(exchange, providers, SCHEMA, label=f"{short_name(exchange.rpc)} ({exchange.name})")
