"""Retention: delete the rows no decision needs any more, so auth's tables stop growing.

- A refresh token `token_retention` after it expired. Refresh refuses an expired token
  before looking at anything else, so a purged one gets the very same answer (unknown:
  REFRESH_TOKEN_INVALID); the time in between lets an incident still trace a presented
  token to its session and account.
- A token family once its last token is gone: nothing can refresh it any more.
- A throttle whose last failure is older than the widest policy window and that is not
  locked: `ThrottlePolicy.after_failure` already treats it as no failure at all, and
  `retry_after_s` lets it through, so deleting it changes no decision.

Each transaction deletes at most `batch_size` tokens (and the families they leave empty) or
`batch_size` throttles, and the purge loops until a batch comes back short, so a large
backlog never holds the write lock (SQLite has one writer) for long.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import structlog

from .ports import AuthUnitOfWork
from .registration import UnitOfWork
from .throttle import ThrottlePolicy

__all__ = ["Retention"]

log = structlog.get_logger(__name__)


class Retention:
    """The periodic purge of expired refresh tokens, empty families and stale throttles."""

    def __init__(
        self,
        uow: UnitOfWork,
        *,
        token_retention: timedelta,
        throttle_policies: Sequence[ThrottlePolicy],
        clock: Callable[[], datetime],
        batch_size: int = 1000,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")  # else the loop never ends
        self._uow = uow
        self._token_retention = token_retention
        # The widest window: a key's policy follows from its prefix, but one cutoff for all
        # is simpler and never deletes a failure that some policy still counts.
        self._throttle_window = timedelta(seconds=max(p.window_s for p in throttle_policies))
        self._clock = clock
        self._batch_size = batch_size

    async def purge(self) -> int:
        """Delete what the rules above allow and return how many rows went. A failure keeps
        the batches already committed; the next run goes on from there."""
        now = self._clock()
        tokens_before, throttles_before = now - self._token_retention, now - self._throttle_window

        # Each batch returns its counts rather than adding to ours: a transaction retried
        # after a conflict runs its function again, and must not count twice.
        async def tokens_batch(uow: AuthUnitOfWork) -> tuple[int, int]:
            family_ids = await uow.sessions.delete_expired_tokens(tokens_before, self._batch_size)
            # In the same transaction, so no commit ever leaves a family without tokens.
            return len(family_ids), await uow.sessions.delete_empty_families(set(family_ids))

        async def throttles_batch(uow: AuthUnitOfWork) -> int:
            return await uow.throttles.delete_expired(throttles_before, now, self._batch_size)

        tokens = families = throttles = 0
        while True:  # until a batch comes back short: nothing is left past the cutoff
            deleted, emptied = await self._uow(tokens_batch)
            tokens, families = tokens + deleted, families + emptied
            if deleted < self._batch_size:
                break
        while True:
            deleted = await self._uow(throttles_batch)
            throttles += deleted
            if deleted < self._batch_size:
                break
        if tokens or families or throttles:
            # Counts only: which tokens went (even as digests) has no place in a log.
            log.info(
                "expired_rows_purged",
                refresh_tokens=tokens,
                token_families=families,
                login_throttles=throttles,
            )
        return tokens + families + throttles
