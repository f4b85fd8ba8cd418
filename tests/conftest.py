from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.sonoran import SonoranClient

from . import _aiohttp314_shim  # noqa: F401  (before any aioresponses use)
from .fake_cad import FakeCad
from .helpers import make_settings


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
    return SonoranClient(session, make_settings(cad.url, api_version).sonoran, retry_backoff=0.01)
