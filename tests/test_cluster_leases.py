"""Ownership of communities by lease rows in a real PostgreSQL: one owner at a time, a takeover
after a crash within ttl + a tick, and a process that cannot renew stops before another starts."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.cli import build_parser, main
from bot.cluster import Lease, LeaseKeeper, Leases, Membership, cluster_view, lease_view, open_cluster
from bot.cluster.cli import cluster, report
from bot.cluster.identify import identify_turn
from bot.cluster.schema import NOW
from bot.db import PostgresDatabase

from .helpers import helper_process, make_settings
from .pg import drop_schemas

TTL = 1.5
TICK = TTL / 3
TAKEOVER_BOUND = TTL + TICK
SLACK = 3.0  # generous: a loaded CI machine


@pytest.fixture
async def db(pg_url: str, pg_schema: str) -> AsyncIterator[PostgresDatabase]:
    opened = await open_cluster(pg_url, pg_schema)
    yield opened
    await opened.close()


async def until(condition: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    """Waits for `condition`; fails (no timing claim: a stuck test) after `limit` seconds."""
    give_up = time.monotonic() + limit
    while not condition():
        if time.monotonic() > give_up:
            pytest.fail(f"still waiting for {what} after {limit}s")
        await asyncio.sleep(0.01)


async def taken_over(heir: LeaseKeeper, fence: int, after: str) -> None:
    """From now (the owner just died), `heir` takes "c1" over with the next fence within the
    bound; the time it took is printed."""
    killed = time.monotonic()
    await until(lambda: heir.holds("c1"), "the takeover")
    took = time.monotonic() - killed
    print(f"takeover after {after}: {took:.2f}s (ttl {TTL}s, bound ttl + tick {TAKEOVER_BOUND}s)")
    assert heir.lease("c1").fence == fence + 1  # type: ignore[union-attr]
    assert took < TAKEOVER_BOUND + SLACK


async def db_now(db: PostgresDatabase) -> float:
    return float((await db.fetch(f"SELECT {NOW}"))[0][0])


class Log:
    """An ordered log of the keepers' callbacks (one event loop: append order is real order),
    with the set of keepers that believe they own the community, checked at every change."""

    def __init__(self, db: PostgresDatabase) -> None:
        self.db = db
        self.events: list[tuple[str, str, float]] = []  # (event, keeper, database clock)
        self.owning: set[str] = set()

    def keeper(self, db: PostgresDatabase, name: str) -> LeaseKeeper:
        async def acquired(community: str, lease: Lease) -> None:
            assert not self.owning, f"{name} acquired while {self.owning} still owns"
            self.owning.add(name)
            self.events.append(("acquired", name, lease.expires_at - lease.ttl))

        async def lost(community: str) -> None:
            self.owning.discard(name)
            self.events.append(("lost", name, await db_now(self.db)))

        return LeaseKeeper(db, name, TTL, on_acquired=acquired, on_lost=lost)

    def first(self, event: str, name: str) -> int:
        return next(i for i, (e, n, _) in enumerate(self.events) if (e, n) == (event, name))


@contextlib.asynccontextmanager
async def running(*keepers: LeaseKeeper) -> AsyncIterator[None]:
    for keeper in keepers:
        await keeper.start()
    try:
        yield
    finally:
        for keeper in keepers:
            await keeper.stop()


async def test_two_keepers_wanting_one_community_one_owns_it(db: PostgresDatabase) -> None:
    log = Log(db)
    first, second = log.keeper(db, "first"), log.keeper(db, "second")
    async with running(first, second):
        first.want("c1")
        second.want("c1")
        await until(lambda: bool(log.owning), "an owner")
        await asyncio.sleep(3 * TICK)  # several renewals and acquire attempts later
        assert [first.holds("c1"), second.holds("c1")].count(True) == 1
        owner = "first" if first.holds("c1") else "second"
        [row] = await lease_view(db)
        assert (row.owner, row.fence, log.owning) == (owner, 1, {owner})
        assert row.expires_in > 0


async def test_release_lets_the_other_in_at_once_with_the_next_fence(db: PostgresDatabase) -> None:
    leases = Leases(db)
    lease = await leases.acquire("c1", "a", 60.0)
    assert lease is not None and lease.fence == 1
    assert await leases.acquire("c1", "b", 60.0) is None
    assert await leases.renew(lease)
    await leases.release(lease)
    assert not await leases.renew(lease)
    taken = await leases.acquire("c1", "b", 60.0)
    assert taken is not None and (taken.owner, taken.fence) == ("b", 2)
    assert not await leases.renew(lease)  # the old tenure's fence is refused
    await leases.release(lease)  # and cannot end the new one
    assert (await lease_view(db))[0].owner == "b" and (await lease_view(db))[0].expires_in > 0


async def test_acquire_many_takes_in_one_statement_what_is_free_expired_or_already_ours(db: PostgresDatabase) -> None:
    leases = Leases(db)
    held = await leases.acquire("c2", "b", 60.0)
    expired = await leases.acquire("c3", "b", 60.0)
    assert held is not None and expired is not None
    await leases.release(expired)
    ours = await leases.acquire("c4", "a", 60.0)
    assert ours is not None
    taken = await leases.acquire_many(["c1", "c2", "c3", "c4"], "a", 60.0)
    assert sorted((lease.community, lease.fence) for lease in taken) == [("c1", 1), ("c3", 2), ("c4", 2)]
    assert await leases.acquire_many([], "a", 60.0) == []


async def test_an_owner_stopped_without_release_is_taken_over_within_ttl_and_a_tick(db: PostgresDatabase) -> None:
    log = Log(db)
    dead, heir = log.keeper(db, "dead"), log.keeper(db, "heir")
    await dead.start()
    dead.want("c1")
    await until(lambda: dead.holds("c1"), "the first owner")
    fence = dead.lease("c1").fence  # type: ignore[union-attr]
    async with running(heir):
        heir.want("c1")
        await asyncio.sleep(2 * TICK)
        assert not heir.holds("c1")
        await dead.stop(release=False)  # its tasks end, its row stays: as after SIGKILL
        await taken_over(heir, fence, "a stop without release")


class Blockable(Leases):
    """The lease table as a keeper cut off from the database sees it, once `blocked`: every call
    hangs (a partition, a paused process) or fails at once (the server refuses)."""

    def __init__(self, db: PostgresDatabase, mode: str) -> None:
        super().__init__(db)
        self.mode = mode
        self.blocked = False

    async def _gate(self) -> None:
        if self.blocked:
            if self.mode == "hang":
                await asyncio.Event().wait()
            raise OSError("blocked")

    async def acquire(self, community: str, owner: str, ttl: float) -> Lease | None:
        await self._gate()
        return await super().acquire(community, owner, ttl)

    async def acquire_many(self, communities: Any, owner: str, ttl: float) -> list[Lease]:
        await self._gate()
        return await super().acquire_many(communities, owner, ttl)

    async def renew_many(self, owner: str, leases: Any, ttl: float) -> set[str]:
        await self._gate()
        return await super().renew_many(owner, leases, ttl)

    async def release(self, lease: Lease) -> None:
        await self._gate()
        await super().release(lease)


@pytest.mark.parametrize("mode", ["hang", "fail"])
async def test_an_owner_that_cannot_renew_stops_before_the_other_starts(db: PostgresDatabase, mode: str) -> None:
    log = Log(db)
    cut, other = log.keeper(db, "cut"), log.keeper(db, "other")
    cut.leases = table = Blockable(db, mode)
    both: list[float] = []

    async def sample() -> None:
        while True:
            if cut.holds("c1") and other.holds("c1"):
                both.append(time.monotonic())
            await asyncio.sleep(0.005)

    async with running(cut, other):
        cut.want("c1")
        await until(lambda: cut.holds("c1"), "the first owner")
        other.want("c1")
        sampler = asyncio.create_task(sample())
        await asyncio.sleep(2 * TICK)
        table.blocked = True
        blocked = time.monotonic()
        await until(lambda: other.holds("c1"), "the takeover")
        took = time.monotonic() - blocked
        sampler.cancel()
        print(f"{mode}: the cut-off owner stopped, the other acquired {took:.2f}s after the block (ttl {TTL}s)")
        assert log.first("lost", "cut") < log.first("acquired", "other")
        lost_at = log.events[log.first("lost", "cut")][2]
        acquired_at = log.events[log.first("acquired", "other")][2]
        print(f"{mode}: on the database's clock, stopped {acquired_at - lost_at:.3f}s before the other acquired")
        assert lost_at < acquired_at
        assert both == []
        assert other.lease("c1").fence == 2  # type: ignore[union-attr]
        table.blocked = False  # for the clean stop


async def test_a_killed_process_is_taken_over_within_ttl_and_a_tick(db: PostgresDatabase, pg_url: str) -> None:
    async with helper_process("tests.cluster_holder", pg_url, db.schema, "c1", str(TTL)) as (holder, line):
        assert line[0] == "acquired", line
        fence = int(line[1])
        log = Log(db)
        heir = log.keeper(db, "heir")
        async with running(heir):
            heir.want("c1")
            await asyncio.sleep(2 * TICK)
            assert not heir.holds("c1")  # the holder renews it
            holder.send_signal(signal.SIGKILL)
            await taken_over(heir, fence, "SIGKILL of a real process")


async def test_the_cluster_view_and_the_cli(
    db: PostgresDatabase, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    one = Membership(db, "one", shard_ids=[1, 0], shard_count=4, interval=TICK)
    two = Membership(db, "two", shard_ids=[2, 3], shard_count=4, interval=TICK)
    gone = Membership(db, "gone", shard_ids=[], shard_count=4, interval=TICK)
    for member in (one, two, gone):
        await member.start()
    await gone.stop()  # a clean stop: its row is removed
    await db.execute(f"INSERT INTO members VALUES ('stale', 'h', 1, '', 1, {NOW} - 300, {NOW} - 100)")
    keeper_one, keeper_two = LeaseKeeper(db, "one", TTL), LeaseKeeper(db, "two", TTL)
    async with running(keeper_one, keeper_two):
        keeper_one.want("alpha")
        keeper_one.want("beta")
        keeper_two.want("gamma")
        keeper_two.want("delta")
        await until(lambda: len(keeper_one.held) == 2 and len(keeper_two.held) == 2, "four leases")
        await keeper_two.drop("delta")
        view = await cluster_view(db, ttl=TTL)
        assert [(m.id, m.shard_ids, m.shard_count, m.communities) for m in view] == [
            ("one", "0,1", 4, ("alpha", "beta")),
            ("two", "2,3", 4, ("gamma",)),
        ]
        assert all(0 <= m.heartbeat_age < 3 * TTL for m in view)
        lines = report(view, await lease_view(db))
        print("\n".join(lines))
        assert lines[0] == "2 processes alive"
        assert lines[1].startswith("one  host ") and "shards 0,1 of 4" in lines[1] and "owns 2: alpha, beta" in lines[1]
        assert "owns 1: gamma" in lines[2]
        assert lines[3] == "1 community with an expired or released lease:"
        assert lines[4].startswith("  delta: last held by two (fence 1), ")

        settings = make_settings("http://127.0.0.1:9", state={"url": pg_url})
        capsys.readouterr()
        assert await cluster(settings, db.schema) == 0
        out = capsys.readouterr().out
        assert out.splitlines()[0] == "2 processes alive" and "delta: last held by two" in out
    for member in (one, two):
        await member.stop()
    assert await cluster_view(db, ttl=TTL) == []


async def test_the_cli_with_sqlite_says_one_process_owns_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert build_parser().parse_args(["cluster"]).command == "cluster"
    settings = make_settings("http://127.0.0.1:9", state_path=tmp_path / "state.sqlite3")
    assert await cluster(settings) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert "a single process owns every community" in line


async def test_the_cli_says_when_the_server_cannot_be_reached(capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings("http://127.0.0.1:9", state={"url": "postgresql://u:hunter2@127.0.0.1:9/db"})
    assert await cluster(settings) == 1
    err = capsys.readouterr().err
    assert "cannot open postgresql://u:***@127.0.0.1:9/db" in err and "hunter2" not in err


def test_python_m_bot_cluster_reads_the_state_url_from_the_configuration(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"test_{uuid.uuid4().hex[:16]}"
    schema = f"{name}_cluster"  # beside the deployment's own schema (`cluster_schema`)
    monkeypatch.setenv("SONORAN_BOT_STATE__URL", pg_url)
    monkeypatch.setenv("SONORAN_BOT_STATE__SCHEMA_NAME", name)
    config = tmp_path / "config.toml"
    config.write_text('[discord]\ntoken = "t"\n[sonoran]\ncommunity_id = "c"\napi_key = "k"\n')
    try:
        assert main(["cluster", "--config", str(config)]) == 0
        assert capsys.readouterr().out.splitlines() == ["0 processes alive"]
    finally:
        asyncio.run(drop_schemas(pg_url, schema))


async def test_processes_identifying_at_once_take_turns_spaced_on_the_databases_clock(
    db: PostgresDatabase, pg_url: str, pg_schema: str
) -> None:
    """Three processes (three pools) book their gateway IDENTIFY at the same moment: the first goes
    now, the others one spacing apart each, whatever their own clocks say; a later booking, once
    the slots have passed, goes at once."""
    others = [await open_cluster(f"{pg_url}?application_name=identify-{n}", pg_schema) for n in range(2)]
    try:
        turns = await asyncio.gather(*(identify_turn(handle, spacing=0.4) for handle in (db, *others)))
        slots = sorted(turn.slot for turn in turns)
        assert [round(b - a, 6) for a, b in itertools.pairwise(slots)] == [0.4, 0.4]
        assert sorted(turn.wait for turn in turns)[0] == 0.0
        await asyncio.sleep(max(turn.wait for turn in turns) + 0.45)
        assert (await identify_turn(db, spacing=0.4)).wait == 0.0
    finally:
        for handle in others:
            await handle.close()
