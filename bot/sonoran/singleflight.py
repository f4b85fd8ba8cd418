"""Single flight: concurrent callers asking for the same key share one running request."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._inflight: dict[Hashable, asyncio.Task[T]] = {}

    async def run(self, key: Hashable, start: Callable[[], Awaitable[T]], *, name: str) -> T:
        """The result of the request running for `key`, or of `start()` if none is."""
        task = self._inflight.get(key)
        if task is None:

            async def call() -> T:
                return await start()

            task = asyncio.get_running_loop().create_task(call(), name=name)
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # shield: one impatient caller giving up must not cancel the request the others wait on
        return await asyncio.shield(task)

    def _forget(self, key: Hashable, task: asyncio.Task[T]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here so that nobody-was-waiting is not logged as lost
