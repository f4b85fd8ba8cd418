"""One sandbox CAD serving several communities (hosted mode's tests and `bench.communities`): each
has its own calls and its own rate-limit budget, counted per key as Sonoran counts them, and a
request naming a community with another's key, or a community it does not serve, is refused as
Sonoran refuses it. Over real loopback HTTP, with the bot's own Sonoran client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.sandbox.cad import SONORAN_LIMITS
from bot.services import sonoran_client
from bot.sonoran import BadCredentials, RateLimited, SonoranClient

from .doubles.fake_cad import API_KEY, COMMUNITY_ID, FakeCad
from .helpers import make_settings

OTHER_ID = "othercad"
OTHER_KEY = "9a8b7c6d-1111-2222-3333-0therap1key0"


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[FakeCad, FakeCad]]:
    """The sandbox's own community, and a second one registered beside it."""
    first = FakeCad()
    other = first.add_community(OTHER_ID, OTHER_KEY)
    await first.start()
    yield first, other
    await first.close()


def client_of(
    cad: FakeCad, session: aiohttp.ClientSession, version: int, community_id: str, api_key: str
) -> SonoranClient:
    # the bot's own budget is generous (tests.helpers): what refuses here is the CAD's, per key
    settings = make_settings(cad.url, version, sonoran={"community_id": community_id, "api_key": api_key})
    return sonoran_client(session, settings.cad, retry_backoff=0.01)


async def test_each_community_sees_its_own_calls(
    sandbox: tuple[FakeCad, FakeCad], session: aiohttp.ClientSession, api_version: int
) -> None:
    first, other = sandbox
    assert other.url == first.url
    mine = first.add_911("Mine", "Route 68")
    theirs = other.add_911("Theirs", "Paleto Bay")
    filed = await client_of(first, session, api_version, OTHER_ID, OTHER_KEY).file_911(
        caller="Filed", location="Sandy Shores", description="x", emergency=True, metadata={}
    )

    first_calls = await client_of(first, session, api_version, COMMUNITY_ID, API_KEY).get_calls()
    other_calls = await client_of(first, session, api_version, OTHER_ID, OTHER_KEY).get_calls()

    assert [c.caller for c in first_calls.calls_911] == ["Mine"]
    assert sorted(c.caller for c in other_calls.calls_911) == ["Filed", "Theirs"]
    assert filed in other.servers[1].emergency and filed not in first.servers[1].emergency
    assert mine in first.servers[1].emergency and theirs in other.servers[1].emergency
    # each community records the requests made to it, and only those
    assert first.operations() == ["get_calls"]
    assert other.operations() == ["call_911", "get_calls"]


async def test_budgets_are_per_key(
    sandbox: tuple[FakeCad, FakeCad], session: aiohttp.ClientSession, api_version: int
) -> None:
    first, other = sandbox
    exhausted = client_of(first, session, api_version, COMMUNITY_ID, API_KEY)
    for _ in range(SONORAN_LIMITS["get_version"]):
        await exhausted.get_version()
    with pytest.raises(RateLimited) as info:
        await exhausted.get_version()  # the CAD's 429: the minute's budget of this key is spent
    assert info.value.retry_after > 0
    assert len(first.requests) == SONORAN_LIMITS["get_version"] + 1

    plan = await client_of(first, session, api_version, OTHER_ID, OTHER_KEY).get_version()
    assert plan.level == 3  # the other key's budget is whole
    assert other.operations() == ["get_version"]


async def test_a_key_that_is_not_the_communitys_is_refused(
    sandbox: tuple[FakeCad, FakeCad], session: aiohttp.ClientSession, api_version: int
) -> None:
    first, other = sandbox
    other.add_911("Theirs")
    # the other community's ID with the first one's key (v2 names the community by its key alone)
    wrong = client_of(first, session, api_version, OTHER_ID, API_KEY if api_version == 1 else "not-a-key")
    with pytest.raises(BadCredentials) as info:
        await wrong.get_calls()
    if api_version == 1:
        assert "INVALID API KEY" in str(info.value)
    assert [r.operation for r in other.requests] == ([] if api_version == 2 else ["get_calls"])


async def test_a_community_it_does_not_serve_is_refused(
    sandbox: tuple[FakeCad, FakeCad], session: aiohttp.ClientSession
) -> None:
    first, _ = sandbox
    with pytest.raises(BadCredentials, match="INVALID COMMUNITY ID"):
        await client_of(first, session, 1, "nosuchcad", OTHER_KEY).get_version()


def test_a_community_or_key_registered_twice_is_refused() -> None:
    cad = FakeCad()
    cad.add_community(OTHER_ID, OTHER_KEY)
    with pytest.raises(ValueError, match="already served"):
        cad.add_community(COMMUNITY_ID, "another-key")
    with pytest.raises(ValueError, match="already another community's"):
        cad.add_community("third", OTHER_KEY.lower())
