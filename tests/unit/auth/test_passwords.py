"""argon2 work is bounded on its own: at most `concurrency` hashes or verifications run at
once, however many requests the service admits; the rest wait their turn, none is refused."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import argon2
import pytest

from services.auth.passwords import Argon2Passwords

_WAIT_S = 10.0


class GatedArgon2:
    """Stands in for argon2's hash and verify: each call counts itself in and then blocks,
    in its worker thread, until the test lets one call through."""

    def __init__(self) -> None:
        self.gate = threading.Semaphore(0)
        self._lock = threading.Lock()
        self.entered = 0
        self.inside = 0
        self.most_inside = 0

    def _work(self) -> None:
        with self._lock:
            self.entered += 1
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            assert self.gate.acquire(timeout=_WAIT_S)
        finally:
            with self._lock:
                self.inside -= 1

    # Set on the class as bound methods of this object, so argon2's `self` is not passed.
    def hash(self, password: str, **_: Any) -> str:
        self._work()
        return f"hashed:{password}"

    def verify(self, password_hash: str, password: str) -> bool:
        self._work()
        return True

    async def until_entered(self, count: int) -> None:
        deadline = time.monotonic() + _WAIT_S
        while self.entered < count:
            assert time.monotonic() < deadline, f"{self.entered} of {count} calls started"
            await asyncio.sleep(0.01)


async def test_hashing_runs_at_most_concurrency_at_once_and_queues_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Five calls at a bound of two: two run, each later one starts only when a slot
    frees, and all five finish."""
    passwords = Argon2Passwords(concurrency=2, memory_cost_kib=8, time_cost=1)
    gated = GatedArgon2()
    monkeypatch.setattr(argon2.PasswordHasher, "hash", gated.hash)
    monkeypatch.setattr(argon2.PasswordHasher, "verify", gated.verify)

    calls = [
        asyncio.create_task(passwords.hash("one")),
        asyncio.create_task(passwords.verify("stored", "two")),
        asyncio.create_task(passwords.hash("three")),
        asyncio.create_task(passwords.verify("stored", "four")),
        asyncio.create_task(passwords.hash("five")),
    ]
    await gated.until_entered(2)
    for started in range(3, 6):  # free one slot: exactly one more call starts
        gated.gate.release()
        await gated.until_entered(started)
    gated.gate.release()
    gated.gate.release()
    results = await asyncio.wait_for(asyncio.gather(*calls), _WAIT_S)

    assert gated.most_inside == 2
    assert results == ["hashed:one", True, "hashed:three", True, "hashed:five"]
