"""Units of work: a domain function run in one transaction with its repositories.

The domain never opens or commits transactions itself. It hands a function to a runner,
which opens the transaction, binds the repositories to it, commits if the function returns
and rolls back if it raises, and may run it again on a transient conflict. So a unit of work
must have no effects outside its repositories (log and call other services after it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from ._storage import Database

__all__ = ["SqlUnitOfWorkRunner", "UnitOfWorkRunner"]

T = TypeVar("T")
U = TypeVar("U")
U_co = TypeVar("U_co", covariant=True)


class UnitOfWorkRunner(Protocol[U_co]):
    """Runs `work(uow)` in one transaction and returns its result (the domain's port)."""

    async def __call__(
        self, work: Callable[[U_co], Awaitable[T]], *, readonly: bool = False
    ) -> T: ...


class SqlUnitOfWorkRunner(Generic[U]):
    """The SQL runner: `bind(session)` builds a service's repositories on one session."""

    def __init__(self, database: Database, bind: Callable[[AsyncSession], U]) -> None:
        self._database = database
        self._bind = bind

    async def __call__(self, work: Callable[[U], Awaitable[T]], *, readonly: bool = False) -> T:
        async def in_session(session: AsyncSession) -> T:
            return await work(self._bind(session))

        return await self._database.run(in_session, readonly=readonly)
