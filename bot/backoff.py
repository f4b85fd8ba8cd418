"""The one way this project waits after failures: the CAD transport's retries, the feed's poll
cycles, each feed channel's writer and the SignalR sessions all count their consecutive failures
here and ask how long to wait before the next try."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence


class Backoff:
    """Delays after consecutive failures: `steps` in turn (the last one repeats), or, without
    steps, `first` doubling up to `cap`. `jitter` spreads each delay by up to that fraction either
    way, so that many waiters that failed together do not all come back together."""

    def __init__(
        self,
        *,
        first: float = 1.0,
        cap: float = float("inf"),
        steps: Sequence[float] = (),
        jitter: float = 0.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.first = first
        self.cap = cap
        self.steps = tuple(steps)
        self.jitter = jitter
        self._rng = rng
        self.failures = 0

    def __repr__(self) -> str:
        return f"Backoff(failures={self.failures})"

    def delay(self, failures: int) -> float:
        """The wait after `failures` consecutive failures (1 or more), before jitter."""
        if self.steps:
            return self.steps[min(failures, len(self.steps)) - 1]
        return float(min(self.first * 2.0 ** (failures - 1), self.cap))

    def failed(self) -> float:
        """Counts one more failure; the wait before the next try."""
        self.failures += 1
        wait = self.delay(self.failures)
        if self.jitter:
            wait *= 1 + self.jitter * (2 * self._rng() - 1)
        return wait

    def succeeded(self) -> None:
        self.failures = 0
