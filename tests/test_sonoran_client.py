"""The Sonoran client against the fake CAD over real loopback HTTP, on both API versions."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest
from aioresponses import aioresponses

from bot.config import RateLimits
from bot.messages import user_message
from bot.services import sonoran_client
from bot.sonoran import (
    BadCredentials,
    BadReply,
    CadUnavailable,
    CallType,
    NotFound,
    OutcomeUnknown,
    PlanTooLow,
    RateLimited,
    RequestRejected,
    SonoranClient,
    UnknownServer,
    WrongApiUrl,
)
from bot.sonoran.numbers import UNKNOWN
from bot.sonoran.transport import OPERATIONS

from .doubles.fake_cad import API_KEY, COMMUNITY_ID, FakeCad
from .helpers import make_settings


def _client(cad: FakeCad, session: aiohttp.ClientSession, version: int, **sonoran: object) -> SonoranClient:
    return sonoran_client(session, make_settings(cad.url, version, sonoran=sonoran).cad, retry_backoff=0.01)


# --- every operation, on both versions ------------------------------------------------------------


async def test_file_911_returns_new_id_and_sends_documented_body(
    client: SonoranClient, cad: FakeCad, api_version: int
) -> None:
    call_id = await client.file_911(
        caller="Jane",
        location="Vinewood Blvd",
        description="Car fire",
        emergency=False,
        metadata={"discordUserId": 42, "silent": True},
        server_id=2,
    )
    assert call_id in cad.servers[2].emergency
    (req,) = cad.requests
    if api_version == 1:
        assert (req.method, req.path) == ("POST", "/emergency/call_911")
        assert req.body["id"] == COMMUNITY_ID and req.body["type"] == "CALL_911"
        assert req.body["data"] == [
            {
                "serverId": 2,
                "isEmergency": False,
                "caller": "Jane",
                "location": "Vinewood Blvd",
                "description": "Car fire",
                "metaData": {"discordUserId": 42, "silent": True},
            }
        ]
    else:
        assert (req.method, req.path) == ("POST", "/v2/emergency/servers/2/calls/911")
        assert req.headers["Authorization"] == f"Bearer {API_KEY}"
        assert req.body == {
            "isEmergency": False,
            "caller": "Jane",
            "location": "Vinewood Blvd",
            "description": "Car fire",
            "metaData": {"discordUserId": "42", "silent": "true"},  # v2 wants string values
        }


async def test_v1_call_id_parsed_from_text_with_braces(cad: FakeCad, session: aiohttp.ClientSession) -> None:
    cad.fail_next("call_911", status=200, body="EMERGENCY CALL ADDED ID: {4711}")
    assert await _client(cad, session, 1).file_911(caller="a", location="b", description="c") == 4711


async def test_get_calls_parses_every_list(client: SonoranClient, cad: FakeCad, api_version: int) -> None:
    e = cad.add_911("Anna", "Grove St", "help", metadata={"postal": 202, "x": 1.5})
    d = cad.add_dispatch("Pursuit", notes="", idents=[3, "4"])
    c = cad.add_dispatch("Old call")
    cad.close_dispatch(c)
    calls = await client.get_calls(1, closed_limit=5, closed_offset=0)
    assert [x.call_id for x in calls.calls_911] == [e]
    assert calls.calls_911[0].metadata == {"postal": 202, "x": 1.5}
    assert [x.call_id for x in calls.active] == [d]
    assert calls.active[0].notes == [] and calls.active[0].idents == [3, 4]
    assert [x.call_id for x in calls.closed] == [c] and calls.closed[0].status == 2
    (req,) = cad.requests
    if api_version == 1:
        assert req.path == "/emergency/get_calls"
        assert req.body["data"] == [{"serverId": 1, "closedLimit": 5, "closedOffset": 0, "type": 100}]
    else:
        assert req.path == "/v2/emergency/servers/1/calls"
        assert req.query == {"closedLimit": "5", "closedOffset": "0", "type": "100"}
        assert calls.closed_total == 1


async def test_get_calls_pages_closed_calls(client: SonoranClient, cad: FakeCad) -> None:
    ids = [cad.add_dispatch(f"c{i}") for i in range(5)]
    for i in ids:
        cad.close_dispatch(i)
    page = await client.get_calls(1, closed_limit=2, closed_offset=2, call_type=CallType.DISPATCH)
    assert [c.title for c in page.closed] == ["c2", "c1"]


async def test_remove_911(client: SonoranClient, cad: FakeCad, api_version: int) -> None:
    call_id = cad.add_911()
    await client.remove_911(call_id)
    assert cad.servers[1].emergency == {}
    (req,) = cad.requests
    if api_version == 1:
        assert req.path == "/emergency/remove_911" and req.body["data"] == [{"serverId": 1, "callId": call_id}]
    else:
        assert (req.method, req.path) == ("DELETE", f"/v2/emergency/servers/1/calls/911/{call_id}")


async def test_add_note_with_label(client: SonoranClient, cad: FakeCad, api_version: int) -> None:
    call_id = cad.add_dispatch()
    await client.add_note(call_id, "Suspect fled north", label="Dispatcher Kim")
    note = cad.servers[1].active[call_id]["notes"][0]
    assert (note["content"], note["label"]) == ("Suspect fled north", "Dispatcher Kim")
    (req,) = cad.requests
    if api_version == 1:
        assert req.body["data"] == [
            {"serverId": 1, "callId": call_id, "note": "Suspect fled north", "label": "Dispatcher Kim"}
        ]
    else:
        assert req.path == f"/v2/emergency/servers/1/dispatch-calls/{call_id}/notes"
        assert req.body == {"note": "Suspect fled north", "noteType": "text", "label": "Dispatcher Kim"}


async def test_close_call(client: SonoranClient, cad: FakeCad, api_version: int) -> None:
    call_id = cad.add_dispatch()
    await client.close_call(call_id)
    assert cad.servers[1].closed[0]["callId"] == call_id
    (req,) = cad.requests
    if api_version == 1:
        assert req.path == "/emergency/close_call" and req.body["data"] == [{"serverId": 1, "callId": call_id}]
    else:
        assert req.path == "/v2/emergency/servers/1/dispatch-calls/close" and req.body == {"callIds": [call_id]}


async def test_version_and_servers(client: SonoranClient, cad: FakeCad) -> None:
    plan = await client.get_version()
    assert (plan.level, plan.name, plan.has_call_reads) == (3, "PLUS", True)
    assert [s.id for s in await client.get_servers()] == [1, 2]


# --- errors --------------------------------------------------------------------------------------


async def test_bad_key_is_bad_credentials_without_the_key(
    cad: FakeCad, session: aiohttp.ClientSession, api_version: int
) -> None:
    wrong = "ffffffff-0000-1111-2222-wrongkeyvalue"
    client = _client(cad, session, api_version, api_key=wrong)
    with pytest.raises(BadCredentials) as info:
        await client.get_calls()
    assert wrong not in str(info.value) and wrong not in repr(client) and wrong not in repr(client.api)
    assert API_KEY not in str(info.value)


async def test_bad_community_is_bad_credentials(cad: FakeCad, session: aiohttp.ClientSession) -> None:
    with pytest.raises(BadCredentials, match="INVALID COMMUNITY ID"):
        await _client(cad, session, 1, community_id="nope").get_version()


@pytest.mark.parametrize("plan", [0, 2])
async def test_plan_too_low(cad: FakeCad, session: aiohttp.ClientSession, api_version: int, plan: int) -> None:
    cad.plan = plan
    with pytest.raises(PlanTooLow):
        await _client(cad, session, api_version).get_calls()


async def test_unknown_server(client: SonoranClient, cad: FakeCad) -> None:
    with pytest.raises(UnknownServer) as info:
        await client.get_calls(9)
    assert info.value.server_id == 9
    with pytest.raises(UnknownServer):
        await client.add_note(5, "x", label="y", server_id=9)


async def test_call_not_found(client: SonoranClient, cad: FakeCad) -> None:
    with pytest.raises(NotFound) as info:
        await client.close_call(42)
    assert user_message(info.value) == "Call #42 is not active."
    with pytest.raises(NotFound):
        await client.remove_911(43)
    with pytest.raises(NotFound):
        await client.add_note(44, "n", label="l")


async def test_v2_problem_keeps_trace_id(cad: FakeCad, session: aiohttp.ClientSession) -> None:
    with pytest.raises(NotFound) as info:
        await _client(cad, session, 2).close_call(42)
    assert info.value.trace_id and info.value.trace_id.startswith("trace-")
    assert "trace_id=trace-" in str(info.value)


async def test_v2_other_4xx_is_rejected_with_detail(cad: FakeCad, session: aiohttp.ClientSession) -> None:
    cad.fail_next(
        "call_911",
        status=400,
        content_type="application/problem+json",
        body='{"title": "Bad Request", "detail": "caller is required", "traceId": "t1"}',
    )
    with pytest.raises(RequestRejected) as info:
        await _client(cad, session, 2).file_911(caller="", location="x", description="y")
    assert info.value.detail == "caller is required" and info.value.trace_id == "t1"


async def test_v1_wrong_path_reply_is_not_success(cad: FakeCad, session: aiohttp.ClientSession) -> None:
    cad.fail_next("remove_911", status=200, body="Sonoran CAD: Backend Service Reached")
    with pytest.raises(WrongApiUrl):
        await _client(cad, session, 1).remove_911(1)


async def test_v1_against_a_v2_only_url_is_wrong_url(cad: FakeCad, session: aiohttp.ClientSession) -> None:
    client = _client(cad, session, 1, api_url=cad.url + "/nothing")
    with pytest.raises(WrongApiUrl):
        await client.get_version()


async def test_5xx_on_a_write_is_unavailable_and_not_retried(client: SonoranClient, cad: FakeCad) -> None:
    cad.fail_next("call_911", status=502, body="Bad Gateway")
    with pytest.raises(CadUnavailable):
        await client.file_911(caller="a", location="b", description="c")
    assert cad.operations() == ["call_911"]


async def test_reads_retry_5xx_then_succeed(client: SonoranClient, cad: FakeCad) -> None:
    cad.fail_next("get_calls", status=503)
    cad.fail_next("get_calls", status=500)
    calls = await client.get_calls()
    assert calls.server_id == 1 and cad.operations() == ["get_calls"] * 3


async def test_reads_give_up_after_retries(client: SonoranClient, cad: FakeCad) -> None:
    for _ in range(3):
        cad.fail_next("get_calls", status=500)
    with pytest.raises(CadUnavailable):
        await client.get_calls()
    assert len(cad.requests) == 3


async def test_malformed_call_list_is_bad_reply(client: SonoranClient, cad: FakeCad) -> None:
    cad.fail_next("get_calls", status=200, body="{not json", content_type="application/json")
    with pytest.raises(BadReply):
        await client.get_calls()
    cad.fail_next("get_calls", status=200, body='{"ActiveCalls": 5}', content_type="application/json")
    with pytest.raises(BadReply):
        await client.get_calls()


async def test_lenient_models_survive_odd_shapes(client: SonoranClient, cad: FakeCad) -> None:
    cad.add_dispatch(
        "odd",
        status=77,
        origin="x",
        priority=None,
        notes={"content": "one"},
        metaData={"origin911": 5, "nested": {"a": [1]}},
        brandNew="kept",
    )
    cad.add_911(metadata=None)
    calls = await client.get_calls()
    odd = calls.active[0]
    assert (odd.status, odd.origin, odd.priority) == (77, UNKNOWN, UNKNOWN)  # junk and null: unknown, not 0
    assert odd.notes[0].content == "one" and odd.origin_911 == 5
    assert odd.model_extra == {"brandNew": "kept"}


async def test_write_timeout_is_outcome_unknown_never_refiled(
    cad: FakeCad, session: aiohttp.ClientSession, api_version: int
) -> None:
    client = _client(cad, session, api_version, timeout_seconds=0.2)
    cad.fail_next("call_911", delay=0.5, passthrough=True)  # the CAD files it, but answers too late
    with pytest.raises(OutcomeUnknown):
        await client.file_911(caller="a", location="b", description="c")
    await asyncio.sleep(0.4)
    assert cad.operations() == ["call_911"] and len(cad.servers[1].emergency) == 1


async def test_read_timeout_is_retried(cad: FakeCad, session: aiohttp.ClientSession) -> None:
    client = _client(cad, session, 2, timeout_seconds=0.2)
    cad.fail_next("get_calls", delay=0.5)
    assert (await client.get_calls()).server_id == 1
    assert cad.operations() == ["get_calls", "get_calls"]


async def test_connection_refused_is_unavailable(session: aiohttp.ClientSession) -> None:
    dead = FakeCad()
    await dead.start()
    url = dead.url
    await dead.close()
    client = sonoran_client(session, make_settings(url, 2).cad, retry_backoff=0.01)
    with pytest.raises(CadUnavailable, match="cannot connect"):
        await client.file_911(caller="a", location="b", description="c")


async def test_connection_reset_on_write_is_outcome_unknown(session: aiohttp.ClientSession) -> None:
    client = sonoran_client(session, make_settings("http://cad.test", 2).cad, retry_backoff=0.01)
    with aioresponses() as mock:
        mock.post(re.compile(r".*/calls/911$"), exception=aiohttp.ServerDisconnectedError())
        with pytest.raises(OutcomeUnknown):
            await client.file_911(caller="a", location="b", description="c")
        mock.get(re.compile(r".*/calls\?.*"), exception=aiohttp.ClientOSError(104, "Connection reset by peer"))
        mock.get(re.compile(r".*/calls\?.*"), payload={"ActiveCalls": []})
        assert (await client.get_calls()).active == []


# --- rate limits ---------------------------------------------------------------------------------


async def test_429_with_short_retry_after_is_retried(client: SonoranClient, cad: FakeCad) -> None:
    cad.fail_next(
        "add_call_note",
        status=429,
        body='{"message": "API rate limit exceeded"}',
        content_type="application/json",
        headers={"Retry-After": "0.1"},
    )
    call_id = cad.add_dispatch()
    await client.add_note(call_id, "n", label="l")  # a 429 means "not processed": safe to resend
    assert cad.operations() == ["add_call_note", "add_call_note"]


async def test_429_with_long_wait_raises_with_the_wait(client: SonoranClient, cad: FakeCad) -> None:
    cad.fail_next(
        "get_calls",
        status=429,
        body='{"message": "API rate limit exceeded", "request_id": "r"}',
        content_type="application/json",
        headers={"Retry-After": "42"},
    )
    with pytest.raises(RateLimited) as info:
        await client.get_calls()
    assert info.value.retry_after == 42 and "42 s" in user_message(info.value)
    # and the limiter now holds everyone back instead of provoking more 429s
    with pytest.raises(RateLimited):
        await client.get_calls()
    assert cad.operations() == ["get_calls"]


@pytest.mark.parametrize("header", ["RateLimit-Reset", "X-RateLimit-Reset"])
async def test_429_reset_headers(client: SonoranClient, cad: FakeCad, header: str) -> None:
    cad.fail_next("get_version", status=429, body="{}", headers={header: "30"})
    with pytest.raises(RateLimited) as info:
        await client.get_version()
    assert info.value.retry_after == 30


async def test_429_http_date(client: SonoranClient, cad: FakeCad) -> None:
    cad.fail_next("get_version", status=429, body="{}", headers={"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})
    with pytest.raises(RateLimited) as info:
        await client.get_version()
    assert info.value.retry_after > 10


async def test_repeated_429_gives_up(client: SonoranClient, cad: FakeCad) -> None:
    for _ in range(3):
        cad.fail_next("get_version", status=429, body="{}", headers={"Retry-After": "0"})
    with pytest.raises(RateLimited):
        await client.get_version()
    assert len(cad.requests) == 3


async def test_client_side_budget_prevents_429(cad: FakeCad, session: aiohttp.ClientSession) -> None:
    client = _client(cad, session, 2, rate_limits={"get_calls": 2}, poll_seconds=30)
    await client.get_calls(1)
    await client.get_calls(2)
    with pytest.raises(RateLimited) as info:
        await client.get_calls(1)
    assert 50 < info.value.retry_after <= 60
    assert len(cad.requests) == 2  # the third never left the bot


# --- single flight -------------------------------------------------------------------------------


async def test_concurrent_get_calls_share_one_request(client: SonoranClient, cad: FakeCad) -> None:
    cad.add_911()
    cad.fail_next("get_calls", delay=0.2, passthrough=True)
    results = await asyncio.gather(*(client.get_calls(1) for _ in range(10)))
    assert len(cad.requests) == 1 and all(r == results[0] for r in results)
    await client.get_calls(2)  # another server is another request
    assert len(cad.requests) == 2


async def test_single_flight_survives_a_cancelled_waiter(client: SonoranClient, cad: FakeCad) -> None:
    cad.fail_next("get_calls", delay=0.2, passthrough=True)
    first = asyncio.create_task(client.get_calls(1))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(client.get_calls(1))
    await asyncio.sleep(0.01)
    first.cancel()
    assert (await second).server_id == 1 and len(cad.requests) == 1


async def test_single_flight_shares_errors(client: SonoranClient, cad: FakeCad, api_version: int) -> None:
    cad.fail_next("get_calls", status=401 if api_version == 2 else 400, body="INVALID API KEY", delay=0.1)
    results = await asyncio.gather(client.get_calls(1), client.get_calls(1), return_exceptions=True)
    assert all(isinstance(r, BadCredentials) for r in results)


# --- redaction -----------------------------------------------------------------------------------


async def test_an_echoed_key_is_redacted(client: SonoranClient, cad: FakeCad) -> None:
    cad.fail_next("close_call", status=400, body=f"MALFORMED REQUEST FOR KEY {API_KEY.upper()}")
    with pytest.raises(RequestRejected) as info:
        await client.close_call(1)
    assert API_KEY.upper() not in str(info.value) and API_KEY not in user_message(info.value)
    assert "[redacted]" in str(info.value)


def test_settings_repr_hides_secrets(cad: FakeCad) -> None:
    settings = make_settings("http://127.0.0.1:1", 2)
    assert API_KEY not in repr(settings) and API_KEY not in str(settings.model_dump())
    assert settings.discord.token.get_secret_value() not in repr(settings)


async def test_a_real_429_from_the_cad_budget_is_retried(client: SonoranClient, cad: FakeCad) -> None:
    cad.limits["get_version"] = 1  # the fake enforces Sonoran's budget (here 1 a minute) with 429s
    await client.get_version()
    cad.reset_window()
    for _ in range(3):  # the gateway's 429, with a Retry-After short enough to wait for
        cad.fail_next(
            "get_version", status=429, body='{"message": "API rate limit exceeded"}', headers={"Retry-After": "0"}
        )
    with pytest.raises(RateLimited):
        await client.get_version()  # every try refused: gives up after 2 retries, with the wait
    assert cad.operations() == ["get_version"] * 4


@pytest.mark.parametrize("header", ["x-ratelimit-reset", "ratelimit-reset", "retry-after"])
async def test_rate_limit_headers_in_any_case(client: SonoranClient, cad: FakeCad, header: str) -> None:
    cad.fail_next("get_calls", status=429, body="{}", headers={header: "42"})
    with pytest.raises(RateLimited) as info:
        await client.get_calls()
    assert info.value.retry_after == 42


def test_every_operation_has_a_rate_limit(session: aiohttp.ClientSession) -> None:
    assert set(RateLimits.model_fields) == set(OPERATIONS)  # a configurable budget for each
    limits = dict.fromkeys(OPERATIONS, 5)
    del limits["close_call"]
    with pytest.raises(ValueError, match="no rate limit for close_call"):
        SonoranClient(session, base_url="http://cad.test", api_key="k", rate_limits=limits)


async def test_an_operation_outside_the_list_is_an_error(client: SonoranClient) -> None:
    with pytest.raises(LookupError, match="not in OPERATIONS"):
        client.http.limiter("get_everything")


@pytest.mark.parametrize("cut", ["detail", "trace"])
async def test_a_key_past_the_cut_is_redacted_whole(cad: FakeCad, session: aiohttp.ClientSession, cut: str) -> None:
    """The CAD's words are redacted before they are cut: a key that straddles the cut leaves none of
    its characters in the error, the member's reply or the audit text (issue 25)."""
    import json

    client = _client(cad, session, 2)
    limit = 300 if cut == "detail" else 100
    for offset in range(limit - len(API_KEY) - 2, limit + 2):
        words = "x" * offset + API_KEY + " and more words after it" * 4
        problem = {"title": "Bad Request", "status": 400}
        problem["detail" if cut == "detail" else "traceId"] = words
        if cut == "trace":
            problem["detail"] = "malformed"
        cad.fail_next("close_call", status=400, body=json.dumps(problem), content_type="application/problem+json")
        with pytest.raises(RequestRejected) as info:
            await client.close_call(1)
        texts = [str(info.value), user_message(info.value), repr(info.value), str(info.value.trace_id)]
        for text in texts:
            for start in range(len(API_KEY) - 7):
                assert API_KEY[start : start + 8].lower() not in text.lower(), (offset, text)


async def test_v1_words_past_the_cut_are_redacted_whole(cad: FakeCad, session: aiohttp.ClientSession) -> None:
    client = _client(cad, session, 1)
    for offset in range(300 - len(API_KEY) - 2, 302):
        cad.fail_next("close_call", status=400, body="x" * offset + API_KEY.upper() + " tail" * 20)
        with pytest.raises(RequestRejected) as info:
            await client.close_call(1)
        for start in range(len(API_KEY) - 7):
            assert API_KEY[start : start + 8].lower() not in str(info.value).lower(), offset
