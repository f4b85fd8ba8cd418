"""End to end: raw interaction payloads -> discord.py's tree -> the Dispatch cog -> the fake CAD over
loopback HTTP, with Discord's side caught by aioresponses. Both API versions."""

from __future__ import annotations

import json
import re
from typing import Any

import discord
import pytest

from bot.core import DispatchBot
from bot.markdown import is_inert

from .conftest import BotFactory
from .doubles.discord_fakes import (
    CALLER_ROLE,
    DISPATCH_ROLE,
    EPHEMERAL,
    MANAGE_GUILD,
    USER_ID,
    FakeDiscord,
    autocomplete,
    dispatch_interaction,
    press,
    slash,
)
from .doubles.fake_cad import FakeCad

NO_PARSE: dict[str, Any] = {"parse": []}


def last_reply(discord_api: FakeDiscord) -> dict[str, Any]:
    replies = discord_api.replies()
    assert replies, "the bot said nothing"
    return replies[-1]


def reply_text(reply: dict[str, Any]) -> str:
    return str((reply.get("data") or reply).get("content") or "")


def assert_ephemeral_no_pings(reply: dict[str, Any]) -> None:
    body = reply.get("data") or reply
    assert body["flags"] & EPHEMERAL
    assert body["allowed_mentions"] == NO_PARSE


# --- /911 ----------------------------------------------------------------------------------------


async def test_911_files_call_and_replies_with_id(
    bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord, api_version: int
) -> None:
    await dispatch_interaction(bot, slash("911", {"location": "Legion Square", "description": "Man down"}))
    (filed,) = cad.servers[1].emergency.values()
    assert (filed["caller"], filed["location"], filed["description"]) == ("Officer Tester", "Legion Square", "Man down")
    assert filed["isEmergency"] is True
    assert filed["metaData"]["discordUserId"] == USER_ID and filed["metaData"]["discordUser"] == "user555"
    defer, followup = discord_api.replies()
    assert defer == {"type": 5, "data": {"flags": EPHEMERAL}}
    assert_ephemeral_no_pings(followup)
    assert (
        followup["content"] == f"Emergency call #{filed['callId']} filed at Legion Square. Dispatch has been notified."
    )
    assert cad.operations() == ["call_911"]


async def test_911_civil_with_caller_and_server(bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord) -> None:
    options = {"location": "Paleto", "description": "Noise", "emergency": False, "caller": "Anon", "server": 2}
    await dispatch_interaction(bot, slash("911", options))
    (filed,) = cad.servers[2].emergency.values()
    assert (filed["caller"], filed["isEmergency"]) == ("Anon", False)
    assert reply_text(last_reply(discord_api)).startswith(f"Civil call #{filed['callId']}")


async def test_911_cooldown_names_the_wait(bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord) -> None:
    await dispatch_interaction(bot, slash("911", {"location": "a", "description": "b"}))
    await dispatch_interaction(bot, slash("911", {"location": "a", "description": "b"}))
    reply = last_reply(discord_api)
    assert reply["type"] == 4 and reply["data"]["flags"] & EPHEMERAL
    assert re.fullmatch(r"Slow down: you can file another call in (59|60) s\.", reply_text(reply))
    assert cad.operations() == ["call_911"]  # the second never reached the CAD


async def test_911_failure_known_not_filed_does_not_start_cooldown(
    bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    cad.fail_next("call_911", status=503)
    await dispatch_interaction(bot, slash("911", {"location": "a", "description": "b"}))
    assert reply_text(last_reply(discord_api)) == "The CAD is not answering right now. Try again in a minute."
    await dispatch_interaction(bot, slash("911", {"location": "a", "description": "b"}))
    assert "filed" in reply_text(last_reply(discord_api))


async def test_911_timeout_says_outcome_unknown(make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord) -> None:
    bot = await make_bot(sonoran={"timeout_seconds": 0.2})
    cad.fail_next("call_911", delay=0.5, passthrough=True)
    await dispatch_interaction(bot, slash("911", {"location": "a", "description": "b"}))
    text = reply_text(last_reply(discord_api))
    assert "unknown whether this went through" in text and "/calls" in text
    assert cad.operations() == ["call_911"]


async def test_caller_roles_enforced(make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord) -> None:
    bot = await make_bot(commands={"caller_role_ids": [int(CALLER_ROLE)]})
    await dispatch_interaction(bot, slash("911", {"location": "a", "description": "b"}, roles=[]))
    reply = last_reply(discord_api)
    assert reply["type"] == 4 and "roles do not allow filing 911 calls" in reply_text(reply)
    assert_ephemeral_no_pings(reply)
    await dispatch_interaction(bot, slash("911", {"location": "a", "description": "b"}, roles=[CALLER_ROLE]))
    assert cad.operations() == ["call_911"]


async def test_commands_refuse_dms(bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord) -> None:
    cases: list[tuple[str, dict[str, Any]]] = [
        ("911", {"location": "a", "description": "b"}),
        ("calls", {}),
        ("close", {"call_id": 5}),
    ]
    for name, options in cases:
        discord_api.reset_requests()
        await dispatch_interaction(bot, slash(name, options, dm=True))
        (reply,) = discord_api.replies()
        assert reply["type"] == 4 and reply_text(reply).startswith("Use this in the server")
        assert_ephemeral_no_pings(reply)
    assert cad.requests == []


async def _settle() -> None:
    import asyncio

    for _ in range(20):
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"status": 401, "body": "INVALID API KEY"}, "The CAD rejected the API key"),
        ({"status": 402, "body": "{}"}, "needs a higher Sonoran plan"),
        ({"status": 429, "body": "{}", "headers": {"Retry-After": "42"}}, "rate-limiting us, try again in 42 s"),
        ({"status": 500, "body": "oops"}, "The CAD is not answering right now"),
        ({"status": 200, "body": "Backend Service Reached"}, "talking to the wrong CAD address"),
    ],
)
async def test_cad_errors_become_readable_ephemeral_replies(
    bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord, api_version: int, fault: dict[str, Any], expected: str
) -> None:
    if api_version == 1 and fault["status"] in (401, 402):
        fault = {"status": 400, "body": "INVALID API KEY" if fault["status"] == 401 else "VERSION PLUS REQUIRED"}
    if api_version == 2 and "Backend" in fault["body"]:
        fault = {"status": 200, "body": "not json at all"}
        expected = "does not understand"
    cad.fail_next("add_call_note", **fault)
    await dispatch_interaction(bot, slash("note", {"call_id": 77, "note": "x"}, permissions=MANAGE_GUILD))
    reply = last_reply(discord_api)
    assert expected in reply_text(reply)
    assert_ephemeral_no_pings(reply)
    assert "Traceback" not in reply_text(reply) and cad.api_key not in reply_text(reply)


async def test_unknown_server_points_to_admin(bot: DispatchBot, discord_api: FakeDiscord) -> None:
    await dispatch_interaction(bot, slash("note", {"call_id": 77, "note": "x", "server": 9}, permissions=MANAGE_GUILD))
    assert "server ID is not configured in the CAD" in reply_text(last_reply(discord_api))


# --- /note, /remove911 ---------------------------------------------------------------------------


async def test_note_labelled_with_display_name(bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord) -> None:
    call_id = cad.add_dispatch()
    await dispatch_interaction(
        bot, slash("note", {"call_id": call_id, "note": "Units en route"}, roles=[], permissions=MANAGE_GUILD)
    )
    note = cad.servers[1].active[call_id]["notes"][0]
    assert (note["content"], note["label"]) == ("Units en route", "Officer Tester")
    reply = last_reply(discord_api)
    assert reply_text(reply) == f"Note added to call #{call_id}."
    assert_ephemeral_no_pings(reply)


async def test_note_on_missing_call(bot: DispatchBot, discord_api: FakeDiscord) -> None:
    await dispatch_interaction(bot, slash("note", {"call_id": 4242, "note": "x"}, permissions=MANAGE_GUILD))
    assert reply_text(last_reply(discord_api)) == "Call #4242 is not active."


async def test_dispatcher_commands_refuse_members_without_role(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await make_bot(commands={"dispatcher_role_ids": [int(DISPATCH_ROLE)]})
    call_id = cad.add_dispatch()
    for name in ("note", "close", "remove911"):
        options: dict[str, Any] = {"call_id": call_id} | ({"note": "x"} if name == "note" else {})
        await dispatch_interaction(bot, slash(name, options, roles=[], permissions=0))
        reply = last_reply(discord_api)
        assert reply_text(reply).startswith("Only dispatchers can do that")
        assert_ephemeral_no_pings(reply)
    assert cad.requests == []
    await dispatch_interaction(bot, slash("note", {"call_id": call_id, "note": "ok"}, roles=[DISPATCH_ROLE]))
    assert cad.operations() == ["add_call_note"]


async def test_remove911_records_who(bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord) -> None:
    call_id = cad.add_911()
    await dispatch_interaction(bot, slash("remove911", {"call_id": call_id}, permissions=MANAGE_GUILD))
    assert cad.servers[1].emergency == {}
    assert reply_text(last_reply(discord_api)) == f"911 call #{call_id} removed."
    assert bot.store.removals(1)[call_id] == "Officer Tester"


# --- /close --------------------------------------------------------------------------------------


async def _ask_to_close(bot: DispatchBot, discord_api: FakeDiscord, call_id: int) -> dict[str, Any]:
    """Runs /close; the question as the member sees it."""
    await dispatch_interaction(bot, slash("close", {"call_id": call_id}, permissions=MANAGE_GUILD))
    question = discord_api.sent("POST", r"/callback$")[-1]
    assert question["type"] == 4 and question["data"]["flags"] & EPHEMERAL
    buttons = question["data"]["components"][0]["components"]
    # each question's buttons are its own: a click can only ever reach the question it was under
    assert [b["custom_id"].rsplit(":", 1)[0] for b in buttons] == ["confirm:yes", "confirm:no"]
    assert buttons[0]["label"] == f"Close call #{call_id}"
    return discord_api.last_interaction_message()


async def test_close_asks_then_closes(bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord) -> None:
    call_id = cad.add_dispatch("Bank robbery", address="Pacific Standard")
    await bot.board.refresh(1)
    cad.requests.clear()
    question = await _ask_to_close(bot, discord_api, call_id)
    assert f"#{call_id} · Bank robbery · Pacific Standard" in question["content"]
    assert cad.requests == []  # nothing closed yet
    await press(bot, question, f"Close call #{call_id}")
    assert cad.servers[1].closed[0]["callId"] == call_id
    assert discord_api.sent("POST", r"/callback$")[-1] == {"type": 6}  # deferred update
    edited = discord_api.sent("PATCH", r"/messages/@original$")[-1]
    assert edited["content"] == f"Call #{call_id} closed." and edited["components"] == []
    assert edited["allowed_mentions"] == NO_PARSE


async def test_close_cancel_changes_nothing(bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord) -> None:
    call_id = cad.add_dispatch()
    question = await _ask_to_close(bot, discord_api, call_id)
    await press(bot, question, "Cancel")
    assert cad.operations() == [] and call_id in cad.servers[1].active
    assert discord_api.sent("POST", r"/callback$")[-1]["type"] == 7


async def test_close_confirm_error_is_shown_in_place(bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord) -> None:
    question = await _ask_to_close(bot, discord_api, 999)
    await press(bot, question, "Close call #999")
    assert discord_api.sent("PATCH", r"/messages/@original$")[-1]["content"] == "Call #999 is not active."


async def test_stranger_cannot_confirm(bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord) -> None:
    call_id = cad.add_dispatch()
    question = await _ask_to_close(bot, discord_api, call_id)
    await press(bot, question, f"Close call #{call_id}", user_id="123456789012345678")
    reply = last_reply(discord_api)
    assert reply_text(reply) == "These buttons belong to the member who ran the command."
    assert cad.operations() == []


# --- /calls --------------------------------------------------------------------------------------


async def test_calls_uses_the_fresh_snapshot(bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord) -> None:
    cad.add_911("Anna", "Grove St", "Fire")
    cad.add_dispatch("Traffic stop", address="Route 68")
    await bot.board.refresh(1)
    cad.requests.clear()
    await dispatch_interaction(bot, slash("calls"))
    assert cad.requests == []  # served from the feed's last poll
    followup = last_reply(discord_api)
    assert_ephemeral_no_pings(followup)
    (embed,) = followup["embeds"]
    assert embed["title"] == "Active calls" and len(embed["fields"]) == 2
    assert "Emergency 911 · Anna" in embed["fields"][0]["name"]
    assert "Traffic stop" in embed["fields"][1]["name"]
    assert "components" not in followup or followup["components"] == []


async def test_calls_fetches_when_nothing_cached(bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord) -> None:
    cad.add_911()
    await dispatch_interaction(bot, slash("calls", {"kind": "911"}))
    assert cad.operations() == ["get_calls"]
    assert last_reply(discord_api)["embeds"][0]["title"] == "Active 911 calls"


async def test_calls_emergency_means_emergency_only(bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord) -> None:
    cad.add_911("Anna", "Grove St", "Fire")
    cad.add_911("Ben", "Vinewood", "Noise", emergency=False)
    for kind, caller, title in (
        ("emergency", "Anna", "Active emergency 911 calls"),
        ("civil", "Ben", "Active civil 911 calls"),
    ):
        await dispatch_interaction(bot, slash("calls", {"kind": kind}))
        embed = last_reply(discord_api)["embeds"][0]
        assert embed["title"] == title and len(embed["fields"]) == 1 and caller in embed["fields"][0]["name"]


async def test_calls_pages_with_buttons(bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord) -> None:
    for i in range(23):
        cad.add_911(f"Caller {i}", f"Street {i}", "x" * 300)
    await dispatch_interaction(bot, slash("calls"))
    followup = last_reply(discord_api)
    embed = followup["embeds"][0]
    assert len(embed["fields"]) == 10 and embed["footer"]["text"] == "Page 1 of 3"
    buttons = followup["components"][0]["components"]
    assert [b["label"] for b in buttons] == ["◀ Previous", "1/3", "Next ▶"]
    assert buttons[0]["disabled"] is True
    pages = discord_api.last_interaction_message()
    await press(bot, pages, "Next ▶")
    page = discord_api.sent("POST", r"/callback$")[-1]
    assert page["type"] == 7 and page["data"]["embeds"][0]["footer"]["text"] == "Page 2 of 3"
    assert page["data"]["components"][0]["components"][1]["label"] == "2/3"
    # a stranger's click is refused and changes nothing
    await press(bot, pages, "Next ▶", user_id="123456789012345678")
    refusal = last_reply(discord_api)
    assert refusal["type"] == 4 and "belong to the member who ran" in refusal["data"]["content"]
    assert len(cad.requests) == 1


async def test_closed_calls_page_through_the_cad(
    bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord, api_version: int
) -> None:
    ids = [cad.add_dispatch(f"Old {i}") for i in range(15)]
    for call_id in ids:
        cad.close_dispatch(call_id)
    await dispatch_interaction(bot, slash("calls", {"kind": "closed"}))
    first = last_reply(discord_api)
    assert first["embeds"][0]["title"] == "Closed calls" and len(first["embeds"][0]["fields"]) == 10
    await press(bot, discord_api.last_interaction_message(), "Next ▶")
    page = discord_api.sent("POST", r"/callback$")[-1]["data"]
    assert [f["name"].split(" · ")[1] for f in page["embeds"][0]["fields"]] == [f"Old {i}" for i in range(4, -1, -1)]
    second = cad.requests[-1]
    if api_version == 2:
        assert second.query == {"closedLimit": "10", "closedOffset": "10", "type": "0"}
        assert page["embeds"][0]["footer"]["text"] == "Page 2/2"
    else:
        assert second.body["data"][0]["closedOffset"] == 10


async def test_player_text_pings_nobody(bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord) -> None:
    nasty = "@everyone @here <@&777777777777777777> <@555555555555555555> **bold** `code` ||spoiler||"
    cad.add_911(nasty, nasty, nasty)
    await dispatch_interaction(bot, slash("calls"))
    followup = last_reply(discord_api)
    assert followup["allowed_mentions"] == NO_PARSE
    text = repr(followup["embeds"])
    assert "@everyone" not in text and "@here" not in text and "<@&7" not in text and "<@5" not in text
    assert "\\\\*\\\\*bold" in text  # markdown escaped
    await dispatch_interaction(bot, slash("911", {"location": nasty, "description": nasty}))
    reply = last_reply(discord_api)
    assert reply["allowed_mentions"] == NO_PARSE and "@everyone" not in reply["content"]
    assert "<@&7" not in reply["content"]


# --- autocomplete --------------------------------------------------------------------------------


async def test_autocomplete_from_cache_only(bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord) -> None:
    robbery = cad.add_dispatch("Armed robbery", address="Mission Row")
    cad.add_dispatch("Traffic stop", address="Route 68")
    fire = cad.add_911("Anna", "Grove St", "Fire")
    await bot.board.refresh(1)
    cad.requests.clear()
    await dispatch_interaction(bot, autocomplete("close", "call_id", "rob"))
    choices = discord_api.sent("POST", r"/callback$")[-1]
    assert choices == {
        "type": 8,
        "data": {"choices": [{"name": f"#{robbery} · Armed robbery · Mission Row", "value": robbery}]},
    }
    await dispatch_interaction(bot, autocomplete("note", "call_id", ""))
    assert len(discord_api.sent("POST", r"/callback$")[-1]["data"]["choices"]) == 2
    await dispatch_interaction(bot, autocomplete("remove911", "call_id", ""))
    assert discord_api.sent("POST", r"/callback$")[-1]["data"]["choices"] == [
        {"name": f"#{fire} · Anna · Grove St", "value": fire}
    ]
    assert cad.requests == []  # no Sonoran request per keystroke


async def test_autocomplete_with_cold_cache_refreshes_once(
    bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    cad.add_dispatch()
    for _ in range(5):
        await dispatch_interaction(bot, autocomplete("close", "call_id", ""))
    await _settle()
    assert cad.operations() == ["get_calls"]  # one background refresh, not one per keystroke


# --- registration --------------------------------------------------------------------------------


async def test_sync_payload_is_valid(bot: DispatchBot, api_version: int) -> None:
    payload = [c.to_dict(bot.tree) for c in bot.tree.get_commands()]
    # v1 cannot target members by Discord id
    v2_only = {"attach", "detach", "status", "panic"} if api_version == 2 else set()
    assert {c["name"] for c in payload} == {"911", "calls", "note", "close", "remove911", "units", "lookup", *v2_only}
    name_rule = re.compile(r"^[-_'\w]{1,32}$")
    for command in payload:
        assert name_rule.match(command["name"]) and command["name"] == command["name"].lower()
        assert 1 <= len(command["description"]) <= 100
        assert command["contexts"] == [0]  # guild only
        for option in command.get("options", []):
            assert name_rule.match(option["name"])
            assert 1 <= len(option["description"]) <= 100 and option["description"] != "…"
    by_name = {c["name"]: c for c in payload}
    for name in ("note", "close", "remove911"):
        assert by_name[name]["default_member_permissions"] == MANAGE_GUILD
        assert any(o.get("autocomplete") for o in by_name[name]["options"])
    kinds = next(o for o in by_name["calls"]["options"] if o["name"] == "kind")
    assert [c["value"] for c in kinds["choices"]] == ["all", "911", "emergency", "civil", "dispatch", "closed"]


async def test_sync_to_configured_guild_at_start(
    make_bot: BotFactory, discord_api: FakeDiscord, api_version: int
) -> None:
    await make_bot(discord={"token": "x", "guild_ids": [333333333333333333]})
    (body,) = discord_api.sent("PUT", r"/applications/\d+/guilds/333333333333333333/commands$")
    assert len(body) == (11 if api_version == 2 else 7)  # /attach, /detach, /status and /panic on v2 only
    assert discord_api.sent("PUT", r"/applications/\d+/commands$") == []  # no global sync at start


def test_default_allowed_mentions_is_none(bot: DispatchBot) -> None:
    assert bot.allowed_mentions is not None and dict(bot.allowed_mentions.to_dict()) == NO_PARSE
    assert isinstance(bot.intents, discord.Intents) and not bot.intents.members and not bot.intents.message_content


async def test_page_buttons_stop_after_timeout(
    bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from bot.views import Paginator

    monkeypatch.setattr(Paginator, "default_timeout", 0.05)
    for i in range(12):
        cad.add_911(f"Caller {i}")
    await dispatch_interaction(bot, slash("calls"))
    await asyncio.sleep(0.3)
    (edit,) = discord_api.sent("PATCH", r"/webhooks/\d+/[^/]+/messages/\d+$")
    assert all(b["disabled"] for b in edit["components"][0]["components"])
    assert edit["allowed_mentions"] == NO_PARSE


async def test_closed_calls_with_long_cad_text_render_and_page(
    bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    # a page of ten closed calls whose CAD text is long and markup-heavy needed two embeds and crashed
    long_text = "**[x](y)** @here " * 200
    ids = [cad.add_dispatch(long_text, address=long_text, description=long_text) for _ in range(15)]
    for call_id in ids:
        cad.close_dispatch(call_id)
    await dispatch_interaction(bot, slash("calls", {"kind": "closed"}))
    first = last_reply(discord_api)
    assert len(first["embeds"]) == 1 and len(first["embeds"][0]["fields"]) == 10
    await press(bot, discord_api.last_interaction_message(), "Next ▶")
    page = discord_api.sent("POST", r"/callback$")[-1]["data"]
    assert len(page["embeds"][0]["fields"]) == 5
    assert discord_api.refused == []  # and Discord accepted every one of them


async def test_the_cads_own_error_text_is_escaped(
    bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord, api_version: int
) -> None:
    hostile = "note **rejected** [Click here](https://evil.example) ||x|| @everyone <@&777777777777777777>"
    body = hostile if api_version == 1 else json.dumps({"title": "Bad Request", "detail": hostile})
    cad.fail_next("add_call_note", status=400, body=body, content_type="application/problem+json")
    await dispatch_interaction(bot, slash("note", {"call_id": 77, "note": "x"}, permissions=MANAGE_GUILD))
    text = reply_text(last_reply(discord_api))
    assert text.startswith("The CAD refused the request: ")
    assert is_inert(text.removeprefix("The CAD refused the request: "))
    assert "@everyone" not in text and "[Click here](" not in text
