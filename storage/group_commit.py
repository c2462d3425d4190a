"""Group commit: many small units of work share one transaction and one commit.

Every update of a conversation is a handful of statements and a commit; on two cores the
per-transaction cost (begin, commit, and on SQLite the hops to its thread) bounds throughput.
Units queue up while the previous batch commits and then run one after another on one
connection inside one transaction; each caller hears back only after that commit, so nothing is
acknowledged before it is durable. If any unit of a batch fails, the batch is rolled back and
its units run again each in a transaction of its own, so one failure never takes others along.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.unit import unit_of_work

log = logging.getLogger(__name__)
T = TypeVar("T")
Work = Callable[[AsyncConnection], Awaitable[Any]]


class GroupCommitter:
    def __init__(self, engine: AsyncEngine, max_batch: int = 64) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Work, asyncio.Future[Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def run(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `work` in the next batch; returns its result once the batch has committed."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="group-commit")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._queue.put((work, future))
        return await future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[Work, asyncio.Future[Any]]]) -> None:
        live = [(work, future) for work, future in batch if not future.cancelled()]
        try:
            async with self._engine.begin() as connection:
                results = [await _one_unit(work, connection) for work, _ in live]
        except Exception:
            if len(live) > 1:
                log.debug("a batch of %d failed; running its units one by one", len(live))
            for work, future in live:
                await self._alone(work, future)
            return
        for (_, future), result in zip(live, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _alone(self, work: Work, future: asyncio.Future[Any]) -> None:
        try:
            async with self._engine.begin() as connection:
                result = await _one_unit(work, connection)
        except Exception as error:  # handed to the caller, who decides what it means
            if not future.done():
                future.set_exception(error)
        else:
            if not future.done():
                future.set_result(result)


async def _one_unit(work: Work, connection: AsyncConnection) -> Any:
    with unit_of_work():
        return await work(connection)
