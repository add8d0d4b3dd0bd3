"""Server-assigned ids: prefixed, fixed-length and matching the protos' patterns."""

from __future__ import annotations

import re

import pytest

from services.framework._ids import is_id, new_id


def test_new_id_matches_the_proto_pattern() -> None:
    """Ids fit the `^acc_[0-9a-z]{26}$` rule the protos validate."""
    assert re.fullmatch(r"acc_[0-9a-z]{26}", new_id("acc"))


def test_ids_do_not_repeat() -> None:
    """Random ids do not collide in practice."""
    assert len({new_id("pay") for _ in range(10_000)}) == 10_000


def test_is_id_checks_prefix_and_shape() -> None:
    """is_id accepts its own ids only with the right prefix."""
    value = new_id("mer")
    assert is_id(value, "mer")
    assert not is_id(value, "acc")
    assert not is_id("mer_short", "mer")


def test_malformed_prefix_is_refused() -> None:
    """A prefix outside 2-4 lowercase letters is a programming error."""
    with pytest.raises(ValueError, match="prefix"):
        new_id("Account")
