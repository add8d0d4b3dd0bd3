"""Fixtures: the library proto compiled once per session, and its descriptors."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pool

from services.edge.auth import PUBLIC
from services.edge.descriptors import MethodSpec, load_descriptor_set
from tests.edge.library import compile_library


@pytest.fixture(scope="session")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(directory of the compiled Python modules, descriptor set path)."""
    out = tmp_path_factory.mktemp("library")
    return out, compile_library(out)


@pytest.fixture(scope="session")
def library(
    compiled: tuple[Path, Path],
) -> tuple[descriptor_pool.DescriptorPool, dict[str, MethodSpec]]:
    """The descriptor pool of the library set and its methods by name."""
    pool, methods = load_descriptor_set(compiled[1], PUBLIC)
    return pool, {m.name: m for m in methods}
