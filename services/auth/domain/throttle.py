"""Login throttling: exponential back-off after a few free failures, never a lock for good.

Each key (an email, a client address) may fail `free_failures` times; each further failure
locks it for `base_delay_s * 2**n`, capped at `max_delay_s`. Attempts while locked are
refused without checking the password and without counting, so hammering does not extend
the lock; and failures older than `window_s` are forgotten. The worst an attacker can do to
a victim is keep them waiting `max_delay_s` at a time, while getting one guess per lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .models import Throttle

__all__ = ["ThrottlePolicy"]


@dataclass(frozen=True)
class ThrottlePolicy:
    free_failures: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 120.0
    window_s: float = 900.0

    def retry_after_s(self, throttle: Throttle | None, now: datetime) -> float | None:
        """Seconds until the key may try again, or None if it may try now."""
        if throttle is None or throttle.locked_until is None or throttle.locked_until <= now:
            return None
        return (throttle.locked_until - now).total_seconds()

    def after_failure(self, key: str, throttle: Throttle | None, now: datetime) -> Throttle:
        """The key's state after one more failed attempt at `now`."""
        forgotten = throttle is None or now - throttle.last_failure_time > timedelta(
            seconds=self.window_s
        )
        failures = 1 if forgotten or throttle is None else throttle.failures + 1
        locked_until = None
        if failures > self.free_failures:
            exponent = min(failures - self.free_failures - 1, 30)  # no float overflow
            delay = min(self.max_delay_s, self.base_delay_s * 2**exponent)
            locked_until = now + timedelta(seconds=delay)
        return Throttle(key, failures, now, locked_until)
