"""Sonoran's per-key budgets shared through a real PostgreSQL: two "processes" (two pools on one
server) never spend more than the limit together, a 429 one of them saw holds the other back, a
process that takes over counts what a killed one spent, and a budget that cannot be read refuses
instead of sending."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import pytest

from bot.cluster import open_cluster
from bot.cluster.budget import UNREACHABLE_WAIT, SharedLimiter, shared_limiters
from bot.db import PostgresDatabase, Row
from bot.services import sonoran_client
from bot.sonoran import RateLimited, SonoranClient
from bot.sonoran.ratelimit import Limiter, SlidingWindowLimiter

from .doubles.fake_cad import FakeCad
from .helpers import helper_process, make_settings
from .pg import throwaway_server


def another_process(url: str, name: str) -> str:
    """The same server under another URL: `PostgresDatabase` pools by URL, so this one gets a pool
    of its own, as another process would."""
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


@pytest.fixture
async def dbs(pg_url: str, pg_schema: str) -> AsyncIterator[tuple[PostgresDatabase, PostgresDatabase]]:
    one = await open_cluster(another_process(pg_url, "one"), pg_schema)
    two = await open_cluster(another_process(pg_url, "two"), pg_schema)
    names = [(await db.fetch("SELECT current_setting('application_name')"))[0][0] for db in (one, two)]
    assert names == ["one", "two"]  # two pools, two sets of connections
    yield one, two
    await one.close()
    await two.close()


async def taken(limiter: Limiter, callers: int, max_wait: float = 0.0) -> list[float]:
    """`callers` concurrent acquisitions; what each returned."""
    return list(await asyncio.gather(*(limiter.acquire(max_wait) for _ in range(callers))))


async def test_two_processes_never_spend_more_than_the_limit_together(
    dbs: tuple[PostgresDatabase, PostgresDatabase],
) -> None:
    one, two = (SharedLimiter(db, "tenant-1", "get_calls", 7) for db in dbs)
    results = await asyncio.gather(taken(one, 20), taken(two, 20))
    spent = [r.count(0.0) for r in results]
    print(f"taken by each process: {spent}")
    assert sum(spent) == 7
    assert all(0 < wait <= 60 for r in results for wait in r if wait)
    assert await one.acquire(0) > 0 and await two.acquire(0) > 0


async def test_callers_that_wait_take_slots_that_never_crowd_a_window(
    dbs: tuple[PostgresDatabase, PostgresDatabase],
) -> None:
    """Callers queue for slots in a short window (0.5 s, 3 each) from both processes; the
    database's times of the slots taken never put 4 in one window."""
    period, limit = 0.5, 3
    limiters = [SharedLimiter(db, "tenant-1", "get_calls", limit, period=period) for db in dbs]
    stamps: list[float] = []

    async def caller(limiter: SharedLimiter) -> None:
        for _ in range(2):
            assert await limiter.acquire(60) == 0.0
            assert limiter.taken_at is not None
            stamps.append(limiter.taken_at)  # read before any other caller of this limiter runs

    await asyncio.gather(*(caller(limiter) for limiter in limiters for _ in range(5)))
    stamps.sort()
    assert len(stamps) == 20
    closest = min(later - first for first, later in zip(stamps, stamps[limit:], strict=False))
    print(
        f"20 slots over {stamps[-1] - stamps[0]:.2f}s; the closest {limit + 1} span {closest:.3f}s (window {period}s)"
    )
    assert closest >= period


async def test_reserve_leaves_slots_to_others(dbs: tuple[PostgresDatabase, PostgresDatabase]) -> None:
    member, feed = (SharedLimiter(db, "tenant-1", "get_calls", 4) for db in dbs)
    assert await member.acquire(0, reserve=3) == 0.0
    assert await member.acquire(0, reserve=3) > 0  # the other three are the feed's
    assert await taken(feed, 3) == [0.0] * 3
    assert await feed.acquire(0) > 0
    assert await member.acquire(0, reserve=4) == 60.0  # everything reserved: a whole window


async def test_a_429_on_one_process_holds_the_other_back(dbs: tuple[PostgresDatabase, PostgresDatabase]) -> None:
    saw, other = (SharedLimiter(db, "tenant-1", "get_calls", 100) for db in dbs)
    assert await other.acquire(0) == 0.0
    saw.block_for(30)
    assert 29 < await saw.acquire(0) <= 30  # at once, before anything is written
    await saw.flush()
    assert 25 < await other.acquire(5) <= 30
    assert 25 < await SharedLimiter(dbs[1], "tenant-1", "get_calls", 100).acquire(0) <= 30  # a newcomer too
    assert await SharedLimiter(dbs[1], "tenant-1", "call_911", 100).acquire(0) == 0.0  # its own operation only


async def test_another_key_or_operation_is_another_budget(dbs: tuple[PostgresDatabase, PostgresDatabase]) -> None:
    one, two = dbs
    full = SharedLimiter(one, "tenant-1", "get_calls", 2)
    assert await taken(full, 3) == [0.0, 0.0, pytest.approx(60, abs=5)]
    assert await taken(SharedLimiter(two, "tenant-2", "get_calls", 2), 2) == [0.0, 0.0]
    assert await taken(SharedLimiter(two, "tenant-1", "call_911", 2), 2) == [0.0, 0.0]
    assert await SharedLimiter(two, "tenant-1", "get_calls", 2).acquire(0) > 0


async def test_a_process_taking_over_counts_what_a_killed_one_spent(
    dbs: tuple[PostgresDatabase, PostgresDatabase], pg_url: str
) -> None:
    async with helper_process("tests.budget_spender", pg_url, dbs[0].schema, "tenant-1", "5", "3") as (spender, line):
        assert line == ["spent", "3"], line
        spender.send_signal(signal.SIGKILL)
        await spender.wait()
        heir = SharedLimiter(dbs[1], "tenant-1", "get_calls", 5)
        assert (await taken(heir, 3)).count(0.0) == 2


class Cut:
    """The cluster's database as a process cut off from it sees it, once `cut`: every statement
    hangs (a partition; the limiter's timeout ends it). Otherwise the real database."""

    def __init__(self, db: PostgresDatabase) -> None:
        self.db = db
        self.dialect = db.dialect
        self.cut = False

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        if self.cut:
            await asyncio.Event().wait()
        return await self.db.fetch(sql, params)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        if self.cut:
            await asyncio.Event().wait()
        return await self.db.execute(sql, params)


def budget_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bot.cluster.budget" and r.levelno >= logging.WARNING]


async def test_a_budget_that_cannot_be_read_refuses_and_says_so_once(
    dbs: tuple[PostgresDatabase, PostgresDatabase], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "bot.cluster.budget")
    cut = Cut(dbs[0])
    limiter = SharedLimiter(cut, "tenant-1", "get_calls", 100, timeout=0.2)  # type: ignore[arg-type]
    assert await limiter.acquire(0) == 0.0
    cut.cut = True
    assert await taken(limiter, 5, max_wait=10) == [UNREACHABLE_WAIT] * 5
    assert len(budget_warnings(caplog)) == 1
    assert "TimeoutError" in budget_warnings(caplog)[0]
    cut.cut = False
    assert await limiter.acquire(0) == 0.0
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        "Sonoran budget: the database answers again"
    ]
    # a closed pool: refused as well, and a new episode
    closing = SharedLimiter(dbs[1], "tenant-1", "get_calls", 100)
    await dbs[1].close()
    assert await taken(closing, 3) == [UNREACHABLE_WAIT] * 3
    assert len(budget_warnings(caplog)) == 2


async def test_a_stopped_server_makes_the_limiter_refuse(pg_schema: str) -> None:
    with throwaway_server() as url:
        db = await open_cluster(url, pg_schema)
        limiter = SharedLimiter(db, "tenant-1", "get_calls", 100)
        assert await limiter.acquire(0) == 0.0
    try:  # the server is gone (stopped, its folder deleted)
        assert await taken(limiter, 3) == [UNREACHABLE_WAIT] * 3
    finally:
        await db.close()


@pytest.mark.parametrize("budget", ["shared", "each its own"])
async def test_two_clients_for_one_key_never_provoke_a_429(
    dbs: tuple[PostgresDatabase, PostgresDatabase], budget: str
) -> None:
    """The sandbox CAD allows 5 call lists a minute per key, as Sonoran does, and the bot is told it
    may spend all 5: two processes hammering it spend exactly 5 with the shared budget. With a
    budget each (this process's own limiter), they provoke 429s: the test can tell."""
    cad = FakeCad()
    await cad.start()
    settings = make_settings(cad.url, 2, sonoran={"rate_limits": {"get_calls": 5}, "poll_seconds": 60}).cad
    try:
        async with aiohttp.ClientSession() as first, aiohttp.ClientSession() as second:
            clients: list[SonoranClient] = [
                sonoran_client(
                    session,
                    settings,
                    retry_backoff=0.01,
                    limiter_factory=shared_limiters(db, "tenant-1") if budget == "shared" else None,
                )
                for session, db in ((first, dbs[0]), (second, dbs[1]))
            ]
            if budget == "shared":
                assert all(isinstance(c.http.limiter("get_calls"), SharedLimiter) for c in clients)
            else:
                assert all(isinstance(c.http.limiter("get_calls"), SlidingWindowLimiter) for c in clients)

            async def hammer(client: SonoranClient, offset: int) -> str:
                try:
                    await client.get_calls(closed_offset=offset)  # each its own request: no single flight
                except RateLimited:
                    return "refused"
                return "answered"

            outcomes = await asyncio.gather(*(hammer(client, offset) for client in clients for offset in range(10)))
    finally:
        await cad.close()
    sent = [r for r in cad.requests if r.operation == "get_calls"]
    print(f"{budget}: {outcomes.count('answered')} answered, {len(sent)} sent to a CAD allowing 5")
    if budget == "shared":
        assert len(sent) == 5 and outcomes.count("answered") == 5  # a sixth would have been a 429
    else:
        assert len(sent) > 5 and outcomes.count("answered") == 5
