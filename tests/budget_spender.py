"""A process that spends part of a shared Sonoran budget, then waits to be killed: `python -m
tests.budget_spender URL SCHEMA KEY LIMIT COUNT`. Prints `spent N` (the slots it took) once done."""

from __future__ import annotations

import asyncio
import sys

from bot.cluster import open_cluster
from bot.cluster.budget import SharedLimiter


async def spend(url: str, schema: str, key: str, limit: int, count: int) -> None:
    db = await open_cluster(url, schema)
    limiter = SharedLimiter(db, key, "get_calls", limit)
    spent = [await limiter.acquire(0) for _ in range(count)].count(0.0)
    print(f"spent {spent}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(spend(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
