"""The state file: migrations, a newer file refused, and files that cannot be used, each one
clear line naming state.path, at start and in `check`, never a hang."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from bot.feed.sender import render
from bot.preflight import run_checks
from bot.sonoran import EmergencyCall
from bot.store import SCHEMA_VERSION, StateFileError, Store

from .doubles.discord_fakes import FakeDiscord
from .doubles.fake_cad import FakeCad
from .test_operations import settings_for, start_bot, write_config

FIRST_RELEASE_SCHEMA = """
CREATE TABLE posts (
    channel_id INTEGER NOT NULL, server_id INTEGER NOT NULL, kind TEXT NOT NULL, call_id INTEGER NOT NULL,
    batch TEXT NOT NULL, position INTEGER NOT NULL, message_id INTEGER, state TEXT NOT NULL,
    data TEXT NOT NULL, version TEXT NOT NULL, shown TEXT, first_seen REAL NOT NULL, ended_at REAL,
    ping INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (channel_id, server_id, kind, call_id)
);
CREATE TABLE removals (
    server_id INTEGER NOT NULL, call_id INTEGER NOT NULL, removed_by TEXT NOT NULL, removed_at REAL NOT NULL,
    PRIMARY KEY (server_id, call_id)
);
INSERT INTO posts VALUES (7, 1, '911', 42, 'b', 0, 99, 'active', '{"call": {"callId": 42}}', 'v', 'v', 1.0, NULL, 0);
"""


async def test_a_first_release_file_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(FIRST_RELEASE_SCHEMA)
    store = await Store.open(path)
    try:
        (post,) = (await store.open_posts(7, 1)).values()
        assert (post.call_id, post.message_id, post.call) == (42, 99, EmergencyCall.model_validate({"callId": 42}))
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_the_page_cache_is_capped_only_when_asked(tmp_path: Path) -> None:
    # hosted mode holds many communities' files in one process and caps each one's cache
    for cache_kib, expected in ((None, -2000), (256, -256)):  # -2000: SQLite's default, 2 MiB
        store = await Store.open(tmp_path / f"state-{cache_kib}.sqlite3", cache_kib=cache_kib)
        try:
            (row,) = await store.db.fetch("PRAGMA cache_size")
            assert row[0] == expected
        finally:
            await store.close()


async def test_a_stored_call_no_model_accepts_keeps_its_post_and_id(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(FIRST_RELEASE_SCHEMA.replace('{"callId": 42}', '{"callId": [42], "caller": "x"}'))
    store = await Store.open(path)
    try:
        (post,) = (await store.open_posts(7, 1)).values()
    finally:
        await store.close()
    assert isinstance(post.call, EmergencyCall)
    assert (post.call_id, post.call.call_id, post.call.caller) == (42, 42, "")
    assert "911 call #42" in str(render(post).title)


async def test_a_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    newer = rf"newer version of the bot \(schema {SCHEMA_VERSION + 1}; this version knows up to {SCHEMA_VERSION}\)"
    with pytest.raises(StateFileError, match=newer):
        await Store.open(path)


async def test_a_file_that_is_not_sqlite_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"this is not a database, it is a note someone saved here\n" * 40)
    with pytest.raises(StateFileError) as info:
        await asyncio.wait_for(Store.open(path), 5)
    assert f"state.path {path} is not a usable SQLite database" in str(info.value)
    assert "move it aside" in str(info.value)


async def test_run_with_a_file_that_is_not_sqlite_exits_at_once(cad: FakeCad, tmp_path: Path) -> None:
    (tmp_path / "state.sqlite3").write_bytes(b"garbage " * 1000)
    started = time.monotonic()
    process = await start_bot(write_config(tmp_path, cad.url))
    _, stderr = await asyncio.wait_for(process.communicate(), 30)  # it used to hang here forever
    log = stderr.decode()
    assert process.returncode == 1, log
    assert time.monotonic() - started < 15
    (line,) = [line for line in log.splitlines() if "not starting" in line]
    assert "state.path" in line and "is not a usable SQLite database" in line and "Traceback" not in log


async def test_run_with_an_unwritable_state_path_names_path_uid_and_fix(cad: FakeCad, tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("")  # a file where the folder should be: as unwritable as a root-owned /data
    config = write_config(tmp_path, cad.url)
    config.write_text(config.read_text().replace(str(tmp_path / "state.sqlite3"), str(blocker / "state.sqlite3")))
    process = await start_bot(config)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    log = stderr.decode()
    assert process.returncode == 1 and "Traceback" not in log, log
    (line,) = [line for line in log.splitlines() if "not starting" in line]
    assert f"state.path {blocker / 'state.sqlite3'}: cannot open and write it as uid " in line and "chown" in line


async def test_check_tests_the_state_path(cad: FakeCad, discord_api: FakeDiscord, tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("")
    checks = await run_checks(settings_for(cad, feeds=[], state={"path": str(blocker / "state.sqlite3")}))
    (state,) = [c for c in checks if c.name == "state file"]
    assert not state.ok and "cannot open and write it as uid" in state.detail
    good = await run_checks(settings_for(cad, feeds=[], state={"path": str(tmp_path / "ok.sqlite3")}))
    (state,) = [c for c in good if c.name == "state file"]
    assert state.ok and f"schema {SCHEMA_VERSION}" in state.detail
