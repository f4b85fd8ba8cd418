from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from bot.core import DispatchBot
from bot.logs import RedactingFormatter
from bot.services import open_services, sonoran_client
from bot.sonoran import SonoranClient

from .doubles import _aiohttp314_shim  # noqa: F401  (before any aioresponses use)
from .doubles.discord_fakes import FakeDiscord
from .doubles.fake_cad import FakeCad
from .helpers import make_settings
from .pg import pg_schema, pg_url  # noqa: F401  (the PostgreSQL server, for the store tests)


@pytest.fixture(autouse=True)
def _drop_the_bots_log_handler() -> Iterator[None]:
    """`main()` installs the bot's log handler on the stderr of the test that ran it; once that
    test's capture is closed, later log records (a pending task collected late) would hit it."""
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler.formatter, RedactingFormatter):
            root.removeHandler(handler)


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def api_version(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
async def cad() -> AsyncIterator[FakeCad]:
    fake = FakeCad(servers=(1, 2))
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def client(cad: FakeCad, session: aiohttp.ClientSession, api_version: int) -> SonoranClient:
    return sonoran_client(session, make_settings(cad.url, api_version).cad, retry_backoff=0.01)


# --- the bot, logged in against fake Discord, talking to the fake CAD ------------------------------

BotFactory = Callable[..., Awaitable[DispatchBot]]


@pytest.fixture
def discord_api() -> Any:
    with aioresponses(passthrough=["http://127.0.0.1", "ws://127.0.0.1"]) as mock:
        fake = FakeDiscord(mock)
        fake.install()
        yield fake
        fake.close()


@pytest.fixture
async def make_bot(
    cad: FakeCad, discord_api: FakeDiscord, tmp_path: Path, api_version: int
) -> AsyncIterator[BotFactory]:
    async with contextlib.AsyncExitStack() as stack:

        async def factory(**settings_overrides: Any) -> DispatchBot:
            settings_overrides.setdefault("state_path", tmp_path / "state.sqlite3")
            version = settings_overrides.pop("api_version", api_version)
            autostart = settings_overrides.pop("autostart_feed", False)
            clock = settings_overrides.pop("clock", time.monotonic)  # what the rate limits go by
            settings = make_settings(cad.url, version, **settings_overrides)
            services = await stack.enter_async_context(open_services(settings, retry_backoff=0.01, clock=clock))
            bot = DispatchBot(settings, services, autostart_feed=autostart)
            stack.push_async_callback(bot.close)
            await bot.login("fake-token")
            return bot

        yield factory


@pytest.fixture
async def bot(make_bot: BotFactory) -> DispatchBot:
    return await make_bot()
