"""The back-off policy on its own: when a key locks, for how long, and when it forgets."""

from __future__ import annotations

from datetime import timedelta

from services.auth.domain import ThrottlePolicy

from .fakes import Clock


def test_the_lock_doubles_with_each_failure_up_to_the_cap() -> None:
    """Delays go 1, 2, 4, 8 … seconds and never past max_delay_s."""
    policy = ThrottlePolicy(free_failures=1, base_delay_s=1, max_delay_s=10, window_s=3600)
    now, state, delays = Clock().now, None, []
    for _ in range(7):
        state = policy.after_failure("k", state, now)
        delays.append(policy.retry_after_s(state, now))
    assert delays == [None, 1, 2, 4, 8, 10, 10]


def test_failures_older_than_the_window_are_forgotten() -> None:
    """A quiet window resets the count, so old failures never add up to a lock."""
    policy = ThrottlePolicy(free_failures=2, window_s=60)
    now = Clock().now
    state = policy.after_failure("k", policy.after_failure("k", None, now), now)
    later = now + timedelta(seconds=61)
    assert policy.after_failure("k", state, later).failures == 1
