"""The back-off policy on its own: when a key locks, for how long, and when it forgets."""

from __future__ import annotations

from datetime import timedelta

from services.auth.domain import Throttle, ThrottlePolicy

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


def test_a_throttle_the_purge_may_delete_decides_what_no_throttle_decides() -> None:
    """Past the window and unlocked, a row changes neither the wait nor the next failure."""
    policy = ThrottlePolicy(free_failures=3, base_delay_s=1, max_delay_s=3600, window_s=60)
    now = Clock().now
    window = timedelta(seconds=policy.window_s)
    for failures in range(1, 40):
        for age in (window + timedelta(microseconds=1), 2 * window, 1000 * window):
            for locked_until in (None, now - timedelta(seconds=1), now):
                row = Throttle("k", failures, now - age, locked_until)
                for later in (now, now + timedelta(seconds=1), now + 10 * window):
                    assert policy.retry_after_s(row, later) is None
                    assert policy.after_failure("k", row, later) == policy.after_failure(
                        "k", None, later
                    )


def test_a_failure_exactly_one_window_old_still_counts() -> None:
    """The purge's cutoff is strict, as the policy's: at the window's edge the row matters."""
    policy = ThrottlePolicy(free_failures=1, window_s=60)
    now = Clock().now
    row = Throttle("k", 1, now - timedelta(seconds=policy.window_s))
    assert policy.after_failure("k", row, now).failures == 2
