"""Replays the committed fuzz seed corpus through the decoding path, as CI's fuzz smoke test.

`make fuzz` explores from these seeds with libFuzzer; here each one runs once, with no
atheris needed: a valid request must reach its route with the fields it sets, and a nasty
one must be refused with a clean 4xx, never an exception (a would-be 500).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import json_format

from tests.fuzz.decoding import Decoding, build_decoding

CORPUS = Path(__file__).parent / "corpus"
SEEDS = sorted(CORPUS.iterdir())


@pytest.fixture(scope="module")
def decoding(tmp_path_factory: pytest.TempPathFactory) -> Decoding:
    """Routes of the library and PayNow, compiled once for the module."""
    return build_decoding(tmp_path_factory.mktemp("fuzz-library"))


def test_the_corpus_has_valid_and_nasty_seeds() -> None:
    """A dozen or so seeds: valid requests for several routes, and nasty ones."""
    names = [seed.name for seed in SEEDS]
    assert len(names) >= 12
    assert sum(name.startswith("nasty_") for name in names) >= 4


@pytest.mark.parametrize("seed", SEEDS, ids=[seed.name for seed in SEEDS])
def test_seed_decodes_or_is_a_clean_4xx(decoding: Decoding, seed: Path) -> None:
    """Every seed decodes without raising; only `nasty_*` ones are refused."""
    outcome = decoding.check(seed.read_bytes())
    if seed.name.startswith("nasty_"):
        assert outcome.error is not None
    else:
        assert outcome.error is None, outcome.error.body()
        assert outcome.route is not None


def test_a_valid_seed_sets_the_fields_of_its_path_query_and_body(decoding: Decoding) -> None:
    """The search seed reaches SearchBooks with the path, query and nested query values set."""
    outcome = decoding.check((CORPUS / "search_every_query_kind").read_bytes())
    assert outcome.route is not None
    assert outcome.route.label == "GET /v1/shelves/{shelf_id}/books:search"
    got = json_format.MessageToDict(outcome.message)
    assert got["shelfId"] == "s1"
    assert got["filter"] == {"author": {"displayName": "Ann"}}
    assert got["tags"] == ["a", "b"]
    assert got["maxAge"] == "1.500s"


def test_json_hidden_from_the_depth_scan_by_utf16_is_too_deep(decoding: Decoding) -> None:
    """Found by the property tests: in UTF-16, U+0122 holds a `"` byte that put the bracket
    scan out of step with the strings, so json.loads met 100 levels (RecursionError, a 500,
    at a few thousand). Now the scan reads the text json.loads reads: 400 JSON_TOO_DEEP."""
    outcome = decoding.check((CORPUS / "nasty_utf16_hidden_depth").read_bytes())
    assert outcome.error is not None
    assert (outcome.error.status, outcome.error.reason) == (400, "JSON_TOO_DEEP")
