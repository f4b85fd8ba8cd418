"""The store on both backends, SQLite and a real PostgreSQL server (tests/pg.py starts one): the
same calls, the same rows, the same safety. Each test gets a fresh file, or a fresh schema."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from bot.config import StateSettings
from bot.db import DatabaseError, PostgresDatabase, SqliteDatabase
from bot.feed.engine import STORE_FAULTS
from bot.posts import Post, PostKind, PostState
from bot.preflight import run_checks
from bot.sonoran import EmergencyCall, Unit
from bot.store import SCHEMA_VERSION, StateFileError, Store, destroy_state
from bot.units.records import SUMMARY_IDENT, AlertRecords, BoardRecords

from .conftest import BotFactory
from .doubles.discord_fakes import FakeDiscord
from .doubles.fake_cad import FakeCad
from .pg import drop_schemas, state_on
from .test_feed import EMERGENCY_CHANNEL, ONE_FEED, crash_between_post_and_record, feed_of, posts
from .test_operations import settings_for

COMMUNITY = "community"
CHANNEL = 1_234_567_890_123_456_789  # a Discord id: past 32 bits
MESSAGE = 1_111_111_111_111_111_111

CHECKOUT = Path(__file__).resolve().parent.parent

Opener = Callable[[], Awaitable[Store]]


@pytest.fixture(params=["sqlite", "postgres"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> StateSettings:
    """Where a store of this test keeps its state: a new file, or a new schema on the server."""
    return state_on(request, tmp_path / "state.sqlite3")


@pytest.fixture
async def open_store(state: StateSettings) -> AsyncIterator[Opener]:
    """Opens (again) the test's store; every store opened is closed at the end."""
    opened: list[Store] = []

    async def opener() -> Store:
        store = await Store.open_state(state, COMMUNITY)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        with _quiet():
            await store.close()


@pytest.fixture
async def store(open_store: Opener) -> Store:
    return await open_store()


def _quiet() -> contextlib.AbstractContextManager[None]:
    return contextlib.suppress(*DatabaseError, ValueError)


def post(call_id: int, *, batch: str = "b1", position: int = 0, channel: int = CHANNEL, **changes: object) -> Post:
    made = Post(
        channel_id=channel,
        server_id=1,
        kind=PostKind.CALL_911,
        call_id=call_id,
        batch=batch,
        position=position,
        message_id=None,
        state=PostState.ACTIVE,
        call=EmergencyCall.model_construct(call_id=call_id, caller=f"caller {call_id}"),
        ended_by=None,
        version="v1",
        shown=None,
        first_seen=1000.5,
        ended_at=None,
        ping=True,
    )
    return dataclasses.replace(made, **changes)  # type: ignore[arg-type]


async def test_posts_from_planned_to_shown_to_forgotten(store: Store, open_store: Opener) -> None:
    first, second = post(1), post(2, position=1)
    await store.add_batch([first, second])
    await store.add_batch([first])  # a second time: left as it is
    assert set(await store.known_keys(CHANNEL, 1)) == {(PostKind.CALL_911, 1), (PostKind.CALL_911, 2)}
    assert [p.call_id for p in await store.batch("b1")] == [1, 2]
    (stored,) = (await store.posts(CHANNEL, 1, [(PostKind.CALL_911, 1)])).values()
    assert stored == dataclasses.replace(first, call=EmergencyCall.model_validate({"callId": 1, "caller": "caller 1"}))
    assert stored.ping is True and isinstance(stored.call, EmergencyCall) and stored.call.caller == "caller 1"

    await store.mark_sent("b1", MESSAGE, {(PostKind.CALL_911, 1): "v1", (PostKind.CALL_911, 2): None})
    opened = await store.open_posts(CHANNEL, 1)
    assert {key: p.message_id for key, p in opened.items()} == {
        (PostKind.CALL_911, 1): MESSAGE,
        (PostKind.CALL_911, 2): MESSAGE,
    }

    removed = dataclasses.replace(first, state=PostState.REMOVED, version="v2", ended_at=2000.0)
    await store.update([removed])
    assert await store.unanswered_removals(CHANNEL, 1) == {1}
    await store.record_removal(1, 1, "Officer A")
    await store.record_removal(1, 1, "Officer B")  # the latest is kept
    await store.record_closure(1, 7, "Dispatcher C")
    await store.update([dataclasses.replace(removed, ended_by="Officer B")])
    assert await store.unanswered_removals(CHANNEL, 1) == set()
    await store.mark_shown("b1", {(PostKind.CALL_911, 1): "v2", (PostKind.CALL_911, 2): "v1"})
    opened = await store.open_posts(CHANNEL, 1)
    assert list(opened) == [(PostKind.CALL_911, 2)]  # active; the other is ended and shown

    again = await open_store()  # what a restart reads
    assert again.removals(1) == {1: "Officer B"} and again.closures(1) == {7: "Dispatcher C"}
    assert (await again.open_posts(CHANNEL, 1)).keys() == opened.keys()
    assert await again.forget_ended(older_than=3000.0) == 1
    assert await again.known_keys(CHANNEL, 1) == {(PostKind.CALL_911, 2)}
    assert again.removals(1) == {1: "Officer B"}  # recorded now: kept


async def test_a_refused_batch_is_split_and_a_deleted_message_never_edited(store: Store) -> None:
    await store.add_batch([post(1), post(2, position=1)])
    await store.rebatch([post(2, batch="b2", position=0)])
    assert [p.call_id for p in await store.batch("b2")] == [2]
    await store.mark_sent("b1", MESSAGE, {(PostKind.CALL_911, 1): "v1"})
    await store.mark_deleted("b1")
    (deleted,) = (await store.posts(CHANNEL, 1, [(PostKind.CALL_911, 1)])).values()
    assert deleted.state is PostState.DELETED and deleted.shown == deleted.version


async def test_a_write_is_stored_before_it_returns(store: Store, state: StateSettings) -> None:
    """Acknowledge only what is stored: another connection sees the row as soon as the call returns."""
    await store.add_batch([post(1)])
    if state.postgres_url is None:
        with sqlite3.connect(state.path) as other:
            assert other.execute("SELECT call_id FROM posts").fetchall() == [(1,)]
    else:
        other = await asyncpg.connect(state.postgres_url)
        try:
            rows = await other.fetch(f'SELECT call_id FROM "{state.schema_name}".posts')
        finally:
            await other.close()
        assert [row["call_id"] for row in rows] == [1]


async def test_a_burst_with_one_bad_row_stores_the_rest(store: Store, open_store: Opener) -> None:
    """One transaction for the burst; the row the database refuses is left out alone (a savepoint),
    as the feed does it (`STORE_FAULTS`)."""
    good, bad, later = post(1), post(2**70, position=1), post(3, batch="b2")  # 2**70: no 64-bit integer
    left_out = []
    async with store.atomic():
        for item in (good, bad, later):
            try:
                await store.add_batch([item])
            except STORE_FAULTS as error:
                left_out.append((item.call_id, error))
    assert [call_id for call_id, _ in left_out] == [2**70]
    again = await open_store()
    assert await again.known_keys(CHANNEL, 1) == {(PostKind.CALL_911, 1), (PostKind.CALL_911, 3)}


async def test_a_burst_that_fails_stores_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError, match="crash"):
        async with store.atomic():
            await store.add_batch([post(1)])
            await store.record_removal(1, 1, "Officer A")
            raise RuntimeError("crash in the middle of a burst")
    assert await store.known_keys(CHANNEL, 1) == set()
    await store.add_batch([post(2)])  # the store goes on
    assert await store.known_keys(CHANNEL, 1) == {(PostKind.CALL_911, 2)}


async def test_inside_a_burst_its_task_reads_its_own_writes(store: Store) -> None:
    async with store.atomic():
        await store.add_batch([post(1)])
        assert await store.known_keys(CHANNEL, 1) == {(PostKind.CALL_911, 1)}
        alert = await AlertRecords(store).add(CHANNEL, 1, Unit(id=5), None, 1.0)
        assert await AlertRecords(store).get(alert.id) is not None


async def test_other_writers_wait_for_a_burst(store: Store) -> None:
    order: list[str] = []
    inside = asyncio.Event()

    async def burst() -> None:
        async with store.atomic():
            await store.add_batch([post(1)])
            inside.set()
            await asyncio.sleep(0.05)
            order.append("burst committed")

    async def writer() -> None:
        await inside.wait()
        await store.add_batch([post(2, batch="b2")])
        order.append("writer")

    await asyncio.gather(burst(), writer())
    assert order == ["burst committed", "writer"]


async def test_alerts_and_board_pages(store: Store, open_store: Opener) -> None:
    alerts, boards = AlertRecords(store), BoardRecords(store)
    unit = Unit.model_validate({"id": 5, "data": {"name": "Adam 12", "unitNum": "1A-12"}, "isPanic": True})
    first = await alerts.add(CHANNEL, 1, unit, "#1042 · Armed robbery", 100.0)
    second = await alerts.add(CHANNEL, 1, unit.model_copy(update={"id": 6}), None, 101.0)
    assert first.id > 0 and second.id > first.id
    summary = await alerts.add_summary(CHANNEL, 1, [unit], 102.0)
    other = await alerts.add_summary(CHANNEL, 1, [unit], 103.0)
    assert (summary.ident, summary.is_summary) == (SUMMARY_IDENT, True)
    (row,) = await store.fetch("SELECT ident_id FROM alerts WHERE id = ?", (other.id,))
    assert row["ident_id"] == SUMMARY_IDENT - 1  # the next below an open summary's
    await alerts.mark_sent(first.id, MESSAGE, first.version)
    cleared = first.changed(cleared_at=200.0, acked_by="Dispatcher C", acked_at=150.0)
    await alerts.update(cleared)
    assert (await alerts.get(first.id)) == dataclasses.replace(cleared, message_id=MESSAGE, shown=first.version)
    assert first.id in [a.id for a in await alerts.open_alerts()]  # its message shows an older version
    await alerts.mark_shown(first.id, cleared.version)
    assert first.id not in [a.id for a in await alerts.open_alerts()]
    await alerts.forget_cleared(older_than=300.0)
    assert await alerts.get(first.id) is None and await alerts.get(second.id) is not None

    await boards.plan(CHANNEL, 1, 0, "nonce-a")
    await boards.mark(CHANNEL, 1, 0, MESSAGE, "hash")
    await boards.plan(CHANNEL, 1, 1, "nonce-b")
    await boards.plan(CHANNEL, 1, 0, "nonce-c")  # planned again: a new message
    pages = await BoardRecords(await open_store()).pages(CHANNEL, 1)
    assert {page: (p.nonce, p.message_id) for page, p in pages.items()} == {0: ("nonce-c", None), 1: ("nonce-b", None)}
    await boards.drop(CHANNEL, 1, 1)
    assert list(await boards.pages(CHANNEL, 1)) == [0]


async def test_a_store_written_by_a_newer_version_is_refused(
    store: Store, open_store: Opener, state: StateSettings
) -> None:
    if isinstance(store.db, SqliteDatabase):
        await store.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    else:
        await store.db.execute("INSERT INTO schema_migrations VALUES (?, 0)", (SCHEMA_VERSION + 1,))
    newer = rf"newer version of the bot \(schema {SCHEMA_VERSION + 1}; this version knows up to {SCHEMA_VERSION}\)"
    with pytest.raises(StateFileError, match=newer) as refused:
        await open_store()
    where = f"state.path {state.path}" if state.postgres_url is None else f"state.url {state.described()}"
    assert str(refused.value).startswith(where)


async def test_opening_again_migrates_nothing_twice(store: Store, open_store: Opener) -> None:
    await store.add_batch([post(1)])
    await store.close()
    again = await open_store()
    if isinstance(again.db, PostgresDatabase):
        rows = await again.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [row["version"] for row in rows] == list(range(1, SCHEMA_VERSION + 1))
    else:
        assert (await again.fetch("PRAGMA user_version"))[0][0] == SCHEMA_VERSION
    assert await again.known_keys(CHANNEL, 1) == {(PostKind.CALL_911, 1)}


async def test_destroy_leaves_nothing(store: Store, open_store: Opener, state: StateSettings) -> None:
    await store.add_batch([post(1)])
    await store.destroy()
    if state.postgres_url is None:
        assert not state.path.exists()
    else:
        other = await asyncpg.connect(state.postgres_url)
        try:
            found = await other.fetch("SELECT 1 FROM pg_namespace WHERE nspname = $1", state.schema_name)
        finally:
            await other.close()
        assert found == []
    again = await open_store()  # a new community there starts empty
    assert await again.known_keys(CHANNEL, 1) == set()
    await again.close()
    await destroy_state(state, COMMUNITY)  # a store that is not open: the same
    await destroy_state(state, COMMUNITY)  # and nothing there is no error


# --- a process killed after an acknowledged write ----------------------------------------------

WRITER = """
import asyncio, sys, time
from bot.config import StateSettings
from bot.store import Store
from tests.test_store_backends import post

async def main():
    state = StateSettings.model_validate_json(sys.argv[1])
    store = await Store.open_state(state, "community")
    async with store.atomic():
        await store.add_batch([post(1), post(2, position=1)])
    await store.record_removal(1, 1, "Officer A")
    print("acknowledged", flush=True)
    async with store.atomic():  # a burst under way when the process dies: never acknowledged
        await store.add_batch([post(3, batch="b3")])
        print("inside", flush=True)
        time.sleep(60)

asyncio.run(main())
"""


async def test_what_was_acknowledged_survives_a_sigkill(state: StateSettings, open_store: Opener) -> None:
    settings = state.model_dump_json(context=None)
    if state.url is not None:  # model_dump leaves the url out of nothing; say it plainly
        settings = json.dumps({**json.loads(settings), "url": state.url})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        settings,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=CHECKOUT,
        env={**os.environ, "PYTHONPATH": str(CHECKOUT)},
    )
    assert process.stdout is not None
    try:
        assert await asyncio.wait_for(process.stdout.readline(), 60) == b"acknowledged\n"
        assert await asyncio.wait_for(process.stdout.readline(), 60) == b"inside\n"
    finally:
        process.send_signal(signal.SIGKILL)
        _, stderr = await process.communicate()
    assert process.returncode == -signal.SIGKILL, stderr.decode()
    store = await open_store()
    assert await store.known_keys(CHANNEL, 1) == {(PostKind.CALL_911, 1), (PostKind.CALL_911, 2)}
    assert store.removals(1) == {1: "Officer A"}
    await store.add_batch([post(3, batch="b3")])  # the killed burst holds no lock, leaves no row
    assert (PostKind.CALL_911, 3) in await store.known_keys(CHANNEL, 1)


# --- many communities in one PostgreSQL database -------------------------------------------------


async def test_two_communities_in_one_database_never_see_each_others_rows(pg_url: str) -> None:
    first = StateSettings(url=pg_url, schema_name="test_isolation_a")
    second = StateSettings(url=pg_url, schema_name="test_isolation_b")
    for state in (first, second):
        await destroy_state(state, COMMUNITY)
    a, b = await Store.open_state(first, "a"), await Store.open_state(second, "b")
    try:
        # the same channel, server and call ids in both, written and read in turn on one pool
        for round_ in range(20):
            await a.add_batch([post(round_, batch=f"a{round_}")])
            assert await b.known_keys(CHANNEL, 1) == {(PostKind.CALL_911, n) for n in range(round_)}
            await b.add_batch([post(round_, batch=f"b{round_}")])
            await a.record_removal(1, round_, "in a")
        assert {p.batch for p in (await a.open_posts(CHANNEL, 1)).values()} == {f"a{n}" for n in range(20)}
        assert {p.batch for p in (await b.open_posts(CHANNEL, 1)).values()} == {f"b{n}" for n in range(20)}
        assert await b.batch("a3") == [] and await a.batch("b3") == []
        alert_a = await AlertRecords(a).add(CHANNEL, 1, Unit(id=5), None, 1.0)
        assert await AlertRecords(b).get(alert_a.id) is None
        async with a.atomic():
            await a.update([post(0, batch="a0", state=PostState.CLOSED)])
            assert (await b.posts(CHANNEL, 1, [(PostKind.CALL_911, 0)]))[(PostKind.CALL_911, 0)].batch == "b0"
        reopened = await Store.open_state(second, "b")
        assert reopened.removals(1) == {}  # a's removals are a's
        await reopened.close()
        await a.destroy()  # a community removed: one statement, b untouched
        assert len(await b.known_keys(CHANNEL, 1)) == 20
    finally:
        await a.close()
        await b.destroy()


async def test_a_schema_is_named_from_the_community_id_by_default(pg_url: str) -> None:
    state = StateSettings(url=pg_url)
    store = await Store.open_state(state, "Some Community-1")
    try:
        assert isinstance(store.db, PostgresDatabase)
        assert store.db.schema.startswith("community_some_community_1_")  # and a hash: "some-community_1" differs
    finally:
        await store.destroy()


async def test_an_unreachable_server_is_one_line_naming_state_url_without_its_password() -> None:
    url = "postgresql://bot:hunter2secret@127.0.0.1:1/state"
    with pytest.raises(StateFileError) as error:
        await Store.open_state(StateSettings(url=url), COMMUNITY)
    assert str(error.value).startswith("state.url postgresql://bot:***@127.0.0.1:1/state (schema community_community)")
    assert "hunter2secret" not in str(error.value)


# --- the feed above the store, unchanged, on PostgreSQL --------------------------------------------


async def test_on_postgresql_a_crash_between_send_and_record_does_not_duplicate(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, pg_url: str, pg_schema: str
) -> None:
    """The nonce is stored before the message is sent: after the crash, the same message again."""
    on_postgres = {"url": pg_url, "schema_name": pg_schema}
    bot = await make_bot(feeds=ONE_FEED, state=on_postgres)
    assert isinstance(bot.store.db, PostgresDatabase)
    cad.add_911()
    await crash_between_post_and_record(bot)
    await bot.close()
    again = await make_bot(feeds=ONE_FEED, state=on_postgres)
    await feed_of(again).poll_once()
    await feed_of(again).poll_once()
    # sent again (once, or twice when the first bot's writer retried before it stopped), always with
    # the one stored nonce: Discord holds one message
    sent = posts(discord_api, EMERGENCY_CHANNEL)
    assert len(sent) >= 2 and len({message["nonce"] for message in sent}) == 1
    assert len(discord_api.channel_messages(EMERGENCY_CHANNEL)) == 1


async def test_check_opens_the_postgresql_state_and_names_a_bad_one_without_its_password(
    cad: FakeCad, discord_api: FakeDiscord, pg_url: str, pg_schema: str
) -> None:
    good = await run_checks(settings_for(cad, feeds=[], state={"url": pg_url, "schema_name": pg_schema}))
    (state,) = [c for c in good if c.name == "state file"]
    assert state.ok and f"(schema {pg_schema}): opened and written (schema {SCHEMA_VERSION})" in state.detail
    bad = await run_checks(settings_for(cad, feeds=[], state={"url": "postgresql://bot:hunter2@127.0.0.1:1/x"}))
    (state,) = [c for c in bad if c.name == "state file"]
    assert not state.ok and "state.url postgresql://bot:***@127.0.0.1:1/x" in state.detail
    assert "hunter2" not in state.detail


async def _one_table_schema(url: str, schema: str) -> PostgresDatabase:
    db = await PostgresDatabase.open(url, schema)
    await db.script(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    await db.execute("CREATE TABLE IF NOT EXISTS t (v TEXT)")
    await db.execute("DELETE FROM t")
    await db.execute("INSERT INTO t VALUES (?)", (schema,))
    return db


@pytest.mark.parametrize("ending", ["raised", "cancelled"])
async def test_a_transaction_that_ends_badly_leaves_no_schema_behind_on_postgres(
    pg_url: str, ending: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One pooled connection, two communities: B's transaction rolled back (an exception, or its
    task cancelled mid-statement) must not leave B's next statements on A's schema."""
    from bot.db import postgres

    monkeypatch.setattr(postgres, "POOL_MAX_SIZE", 1)
    a = await _one_table_schema(pg_url + "?application_name=leak", f"leak_a_{ending}")
    b = await _one_table_schema(pg_url + "?application_name=leak", f"leak_b_{ending}")
    try:
        assert [row[0] for row in await a.fetch("SELECT v FROM t")] == [f"leak_a_{ending}"]  # the connection: A

        async def work() -> None:
            async with b.transaction() as tx:
                await tx.fetch("SELECT v FROM t")
                if ending == "raised":
                    raise RuntimeError("a bad row")
                await tx.execute("SELECT pg_sleep(5)")

        task = asyncio.ensure_future(work())
        if ending == "cancelled":
            await asyncio.sleep(0.3)
            task.cancel()
        with pytest.raises((RuntimeError, asyncio.CancelledError)):
            await task
        assert [row[0] for row in await b.fetch("SELECT v FROM t")] == [f"leak_b_{ending}"]
        assert [row[0] for row in await a.fetch("SELECT v FROM t")] == [f"leak_a_{ending}"]
    finally:
        await a.close()
        await b.close()


def test_a_password_in_the_query_string_is_hidden_too() -> None:
    from bot.db.postgres import redact_url

    assert redact_url("postgresql://u@h/db?password=s3cret&sslmode=require") == (
        "postgresql://u@h/db?password=***&sslmode=require"
    )
    assert "pw" not in redact_url("postgresql://u:pw@h:5432/db")


async def test_three_processes_opening_the_same_communities_at_once_all_open_them(pg_url: str) -> None:
    """A cluster's processes start together and open every community in the same order, each on
    its own pool: one makes a schema while the others wait for its migration lock. A waiter once
    failed with "already exists" (its catalog cache, filled before it waited, still said the schema
    was missing): 38 of the 60 opens failed in one run before the fix."""
    tag = os.urandom(4).hex()
    schemas = [f"race_{tag}_{n}" for n in range(20)]

    async def process(name: str) -> list[str]:
        failed, opened = [], []
        for schema in schemas:  # one after another, on one pool, as Host.start does
            try:
                opened.append(await Store.open_postgres(f"{pg_url}?application_name={name}", schema))
            except StateFileError as error:
                failed.append(str(error))
        for store in opened:
            await store.close()
        return failed

    try:
        results = await asyncio.gather(*(process(f"race-{tag}-{k}") for k in range(3)))
        assert results == [[], [], []]
    finally:
        await drop_schemas(pg_url, *schemas)
