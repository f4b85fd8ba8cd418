"""A throwaway PostgreSQL server for the tests of the PostgreSQL backend, started once a session.

`initdb` into a temporary folder, then `pg_ctl start` listening on 127.0.0.1 only (a free port),
its unix socket in that folder, trust authentication (loopback and that socket only). PostgreSQL
refuses to run as root: as root (here and in CI) the binaries run as the `postgres` user
(`runuser`), and the folder is theirs. Stopped and deleted at the end of the session.

`SONORAN_BOT_TEST_PG_URL` names a server to use instead (nothing is started then). Without either,
the tests that need PostgreSQL fail, saying what to install: they never skip.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from bot.config import StateSettings

ENV_URL = "SONORAN_BOT_TEST_PG_URL"
INSTALL = "install PostgreSQL's server binaries (Debian: `apt-get install postgresql`), or set " + ENV_URL


def server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's newest /usr/lib/postgresql/N/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@contextlib.contextmanager
def throwaway_server(extra_options: str = "") -> Iterator[str]:
    """A server of its own for the block; `extra_options`: more `-c name=value` for it (bench.cluster
    loads pg_stat_statements)."""
    binaries = server_binaries()
    if binaries is None:
        pytest.fail(f"no PostgreSQL server binaries (initdb, pg_ctl) found: {INSTALL}", pytrace=False)
    folder = Path(tempfile.mkdtemp(prefix="sonoran-pg-"))
    data, port = folder / "data", _free_port()
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail(f"running as root, and there is no `postgres` user to run the server as: {INSTALL}")
        os.chown(folder, user.pw_uid, user.pw_gid)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 {extra_options}"

    def run(*command: str) -> None:
        done = subprocess.run(_as_server_user(list(command)), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = (folder / "server.log").read_text() if (folder / "server.log").exists() else ""
            pytest.fail(f"{command[0]} failed ({done.returncode}): {done.stderr or done.stdout}\n{log}", pytrace=False)

    try:
        run(str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-o", options, "-w", "start")
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def a_server() -> Iterator[str]:
    """$SONORAN_BOT_TEST_PG_URL, or a throwaway server for the block (tests and benchmarks)."""
    given = os.environ.get(ENV_URL)
    if given:
        yield given
        return
    with throwaway_server() as url:
        yield url


async def drop_schemas(url: str, *names: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        for name in names:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """The URL of a PostgreSQL server for this session's tests (a throwaway one, or $SONORAN_BOT_TEST_PG_URL)."""
    with a_server() as url:
        yield url


@pytest.fixture
async def pg_schema(pg_url: str) -> AsyncIterator[str]:
    """A schema name no other test uses, dropped after the test."""
    schema = f"test_{uuid.uuid4().hex[:16]}"
    yield schema
    connection = await asyncpg.connect(pg_url)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


def state_on(request: pytest.FixtureRequest, sqlite_file: Path) -> StateSettings:
    """For a fixture parametrized over "sqlite" and "postgres": a new file, or a new schema on the
    test server."""
    if request.param == "sqlite":
        return StateSettings(path=sqlite_file)
    return StateSettings(url=request.getfixturevalue("pg_url"), schema_name=request.getfixturevalue("pg_schema"))
