"""The cluster's shared Sonoran budget (`bot.cluster.budget.SharedLimiter`) on a local PostgreSQL:
round trips and latency per acquire.

- round trips: the limiter's connections go through a loopback proxy here that counts what the
  client sends in one go (a flight); one acquire should be one flight once its row exists. Counted
  on a pool used for the cluster alone, and on a pool that serves a community's schema between
  two acquires (the connection's search_path is set again: PostgresDatabase's SET, one flight more).
- latency, one caller: 100 tenants with get_calls at Sonoran's 5 a minute, 8 rounds: a slot
  taken (rounds 1-5) and a refusal (6-8), p50/p99.
- contended: two "processes" (two pools) with 10 callers each on ONE tenant's row (limit 60, then
  refusals): attempts a second and p50/p99 per acquire, queueing behind the local lock included.

The server: $SONORAN_BOT_TEST_PG_URL, else a throwaway one as the tests start (tests/pg.py).

    python -m bench.shared_budget [--json]
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

from bench._common import percentile, report
from bot.cluster import open_cluster
from bot.cluster.budget import SharedLimiter
from bot.db import PostgresDatabase
from tests.pg import a_server, drop_schemas

TENANTS = 100
ROUNDS = 8  # 5 taken (Sonoran's get_calls limit), then refused
CALLERS = 10  # per process, in the contended run
ATTEMPTS = 1000  # per process, in the contended run


class FlightCounter:
    """A loopback TCP proxy to the server that counts the client's flights (one read of what the
    client sent: a statement with its Bind/Execute/Sync, or a SET)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.flights = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        for task in (self._pipe(reader, up_writer, count=True), self._pipe(up_reader, writer, count=False)):
            pipe = asyncio.create_task(task)
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, count: bool) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if count:
                    self.flights += 1
                writer.write(data)
                await writer.drain()
        writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)


def via(url: str, port: int, name: str) -> str:
    """`url` through the proxy on `port`, as the process `name` (a pool of its own per name)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    netloc_new = f"{netloc[0]}@{host}" if len(netloc) == 2 else host
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit((parts.scheme, netloc_new, parts.path, f"{query}application_name={name}", ""))


@contextlib.asynccontextmanager
async def schemas(url: str, *names: str) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await drop_schemas(url, *names)


async def timed(limiter: SharedLimiter) -> tuple[float, float]:
    started = time.perf_counter()
    wait = await limiter.acquire(0)
    return wait, (time.perf_counter() - started) * 1e3


async def one_caller(url: str, schema: str, counter: FlightCounter, port: int) -> dict[str, float]:
    db = await open_cluster(via(url, port, "alone"), schema)
    other = await PostgresDatabase.open(via(url, port, "shared"), f"{schema}_community")
    shared_db = await open_cluster(via(url, port, "shared"), schema)
    try:
        limiters = [SharedLimiter(db, f"tenant-{i}", "get_calls", 5) for i in range(TENANTS)]
        for limiter in limiters:  # rows made, statements prepared
            await limiter.acquire(0, reserve=5)
        taken: list[float] = []
        refused: list[float] = []
        before = counter.flights
        for _ in range(ROUNDS):
            for limiter in limiters:
                wait, ms = await timed(limiter)
                (refused if wait else taken).append(ms)
        alone = (counter.flights - before) / (TENANTS * ROUNDS)
        assert len(taken) == 5 * TENANTS, len(taken)

        beside = [SharedLimiter(shared_db, f"tenant-b{i}", "get_calls", 5) for i in range(TENANTS)]
        for limiter in beside:
            await limiter.acquire(0, reserve=5)
        flights = 0
        for limiter in beside:
            await other.fetch("SELECT 1")  # the pool's connection serves a community in between
            before = counter.flights
            await limiter.acquire(0)
            flights += counter.flights - before
        return {
            "flights_per_acquire_own_pool": alone,
            "flights_per_acquire_shared_pool": flights / TENANTS,
            "taken_p50_ms": percentile(taken, 50),
            "taken_p99_ms": percentile(taken, 99),
            "refused_p50_ms": percentile(refused, 50),
            "refused_p99_ms": percentile(refused, 99),
        }
    finally:
        for handle in (db, other, shared_db):
            await handle.close()


async def contended(url: str, schema: str, port: int) -> dict[str, float]:
    dbs = [await open_cluster(via(url, port, f"process-{i}"), schema) for i in range(2)]
    try:
        limiters = [SharedLimiter(db, "hot", "get_calls", 60) for db in dbs]
        for limiter in limiters:
            await limiter.acquire(0, reserve=60)
        latencies: list[float] = []
        taken = 0

        async def caller(limiter: SharedLimiter) -> None:
            nonlocal taken
            for _ in range(ATTEMPTS // CALLERS):
                wait, ms = await timed(limiter)
                latencies.append(ms)
                taken += wait == 0

        started = time.perf_counter()
        await asyncio.gather(*(caller(limiter) for limiter in limiters for _ in range(CALLERS)))
        elapsed = time.perf_counter() - started
        return {
            "attempts_per_s": len(latencies) / elapsed,
            "taken": taken,
            "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99),
        }
    finally:
        for db in dbs:
            await db.close()


async def main() -> None:
    with a_server() as url:
        parts = urlsplit(url)
        counter = FlightCounter(parts.hostname or "127.0.0.1", parts.port or 5432)
        port = await counter.start()
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        try:
            async with schemas(url, schema, f"{schema}_community"):
                alone = await one_caller(url, schema, counter, port)
                hot = await contended(url, schema, port)
        finally:
            await counter.close()
    report(
        {
            "one_caller": {k: round(v, 3) for k, v in alone.items()},
            "contended": {k: round(v, 3) for k, v in hot.items()},
        },
        [
            f"round trips (client flights) per acquire: {alone['flights_per_acquire_own_pool']:.2f} on a pool of its "
            f"own, {alone['flights_per_acquire_shared_pool']:.2f} when the connection served a community's schema "
            "just before (search_path set again)",
            f"one caller, {TENANTS} tenants x {ROUNDS} rounds at 5/min: taken p50 {alone['taken_p50_ms']:.2f} ms, "
            f"p99 {alone['taken_p99_ms']:.2f} ms; refused p50 {alone['refused_p50_ms']:.2f} ms, "
            f"p99 {alone['refused_p99_ms']:.2f} ms",
            f"contended, one row, 2 processes x {CALLERS} callers, {2 * ATTEMPTS} attempts (limit 60): "
            f"{hot['attempts_per_s']:.0f} attempts/s, {hot['taken']:.0f} taken, p50 {hot['p50_ms']:.2f} ms, "
            f"p99 {hot['p99_ms']:.2f} ms (queueing behind the local lock included)",
        ],
    )


if __name__ == "__main__":
    asyncio.run(main())
