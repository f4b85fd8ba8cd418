"""CAD-linked identity, end to end: "Attach me" / "Detach me" from a feed card and by slash command
(API v2; absent on v1), and dispatcher rights read from the CAD with their cache, single flight,
budget and fallback. The fake CAD holds accounts linked to Discord ids."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.core import DispatchBot

from .conftest import BotFactory
from .doubles.discord_fakes import USER_ID, FakeDiscord, dispatch_interaction, slash
from .doubles.fake_cad import FakeCad
from .helpers import GENEROUS_LIMITS
from .test_cards import DISPATCH, click, components, posted

SERVER_LIMITS = {**GENEROUS_LIMITS, "get_account": 10}  # Sonoran's published budget for account lookups


def followup_text(discord_api: FakeDiscord) -> str:
    return str(discord_api.sent("POST", r"/webhooks/\d+/[^/]+$")[-1]["content"])


def attachments(cad: FakeCad) -> list[Any]:
    return [(r.method, r.path, r.body) for r in cad.requests if r.operation in ("attach_unit", "detach_unit")]


# --- attach and detach -----------------------------------------------------------------------------------
@pytest.mark.parametrize("api_version", [2], ids=["v2"])
async def test_attach_and_detach_from_a_card(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, api_version: int
) -> None:
    bot = await make_bot(feeds=DISPATCH, audit={"channel_id": 3001})
    call_id = cad.add_dispatch("Robbery")
    cad.add_account(USER_ID, units=(11, 12))
    (message,) = await posted(bot, discord_api)
    await click(bot, message, f"card:attach:1:{call_id}", permissions=0)  # no Discord role needed
    assert followup_text(discord_api) == f"Attached to call #{call_id}: units #11, #12."
    await click(bot, message, f"card:detach:1:{call_id}", permissions=0)
    assert followup_text(discord_api) == "Detached units #11, #12."
    assert attachments(cad) == [
        ("POST", f"/v2/emergency/servers/1/dispatch-calls/{call_id}/attachments", {"discord": USER_ID}),
        ("DELETE", "/v2/emergency/servers/1/dispatch-calls/attachments", {"discord": USER_ID}),
    ]
    assert bot.audit is not None and await bot.audit.flush()
    titles = [e["title"] for b in discord_api.sent("POST", r"/channels/3001/messages$") for e in b["embeds"]]
    assert titles == [f"card Attach me call #{call_id}: done", "card Detach me: done"]


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
async def test_attach_and_detach_by_slash_command(
    bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord, api_version: int
) -> None:
    call_id = cad.add_dispatch("Robbery")
    cad.add_account(USER_ID, units=(11,))
    await dispatch_interaction(bot, slash("attach", {"call_id": call_id}))
    assert followup_text(discord_api) == f"Attached to call #{call_id}: unit #11."
    assert cad.servers[1].active[call_id]["idents"] == [11]
    await dispatch_interaction(bot, slash("detach", {}))
    assert followup_text(discord_api) == "Detached unit #11."
    assert cad.servers[1].active[call_id]["idents"] == []


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
@pytest.mark.parametrize(
    ("units", "linked", "expected"),
    [
        ((11,), False, "not linked to a CAD account. Link it in the CAD"),
        ((), True, "no unit on duty in the CAD. Go on duty"),
    ],
    ids=["not linked", "no unit on duty"],
)
async def test_attach_says_what_to_do(
    bot: DispatchBot,
    cad: FakeCad,
    discord_api: FakeDiscord,
    api_version: int,
    units: tuple[int, ...],
    linked: bool,
    expected: str,
) -> None:
    call_id = cad.add_dispatch("Robbery")
    if linked:
        cad.add_account(USER_ID, units=units)
    await dispatch_interaction(bot, slash("attach", {"call_id": call_id}))
    assert expected in followup_text(discord_api)


@pytest.mark.parametrize("api_version", [1], ids=["v1"])
async def test_v1_has_neither_the_buttons_nor_the_commands(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, api_version: int
) -> None:
    bot = await make_bot(feeds=DISPATCH)
    cad.add_dispatch("Robbery")
    (message,) = await posted(bot, discord_api)
    assert [c["label"] for c in components(message)] == ["Note", "Close"]
    assert {c.name for c in bot.tree.get_commands()} == {
        "911",
        "calls",
        "note",
        "close",
        "remove911",
        "units",
        "lookup",
    }


# --- dispatcher rights from the CAD ---------------------------------------------------------------------
def rights_bot(make_bot: BotFactory, **commands: Any) -> Any:
    return make_bot(
        commands={"dispatchers_from_cad": True, "cooldown_911_seconds": 0, **commands},
        sonoran={"rate_limits": SERVER_LIMITS},
    )


def note(call_id: int, user_id: str = USER_ID) -> dict[str, Any]:
    return slash("note", {"call_id": call_id, "note": "en route"}, user_id=user_id)  # no Discord rights


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
async def test_cad_rights_grant_and_refuse(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, api_version: int
) -> None:
    bot = await rights_bot(make_bot)
    call_id = cad.add_dispatch("Robbery")
    cad.add_account(USER_ID, dispatch=True)
    await dispatch_interaction(bot, note(call_id))
    assert followup_text(discord_api) == f"Note added to call #{call_id}."
    other = "555555555555555556"
    cad.add_account(other, dispatch=False)
    await dispatch_interaction(bot, note(call_id, other))
    replies = discord_api.replies()
    assert "Only dispatchers" in json.dumps(replies[-1])
    assert cad.operations().count("add_call_note") == 1


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
async def test_cad_rights_are_cached(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, api_version: int
) -> None:
    bot = await rights_bot(make_bot)
    call_id = cad.add_dispatch("Robbery")
    cad.add_account(USER_ID, dispatch=True)
    for _ in range(3):
        await dispatch_interaction(bot, note(call_id))
    assert cad.operations().count("get_account") == 1  # one lookup, then the cache
    assert cad.operations().count("add_call_note") == 3


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
async def test_a_burst_of_thirty_members_spends_at_most_the_budget(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, api_version: int
) -> None:
    bot = await rights_bot(make_bot)
    call_id = cad.add_dispatch("Robbery")
    members = [str(600_000_000_000_000_000 + n) for n in range(30)]
    for n, member in enumerate(members):
        cad.add_account(member, dispatch=n % 2 == 0)  # half of them may dispatch in the CAD
    for member in members:
        await dispatch_interaction(bot, note(call_id, member))
    lookups = cad.operations().count("get_account")
    notes = cad.operations().count("add_call_note")
    assert lookups == 10  # the minute's budget, no more
    granted = {r.body["note"] for r in cad.requests if r.operation == "add_call_note"}
    assert notes <= 5 and granted == {"en route"}  # of the 10 looked up, 5 may dispatch; the rest fell back
    assert bot.services.rights is not None and bot.services.rights.attempts == 30  # each asked once, 20 refused here


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
async def test_a_cad_outage_never_grants(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, api_version: int
) -> None:
    bot = await rights_bot(make_bot)
    call_id = cad.add_dispatch("Robbery")
    cad.add_account(USER_ID, dispatch=True)
    cad.fail_next("get_account", status=500, body="oops")
    await dispatch_interaction(bot, note(call_id))
    assert "Only dispatchers" in json.dumps(discord_api.replies()[-1])
    await dispatch_interaction(bot, note(call_id))  # the failure was not cached: asked again, granted
    assert followup_text(discord_api) == f"Note added to call #{call_id}."


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
async def test_discord_rules_need_no_lookup_and_autocomplete_never_looks_up(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, api_version: int
) -> None:
    from .doubles.discord_fakes import MANAGE_GUILD, autocomplete

    bot = await rights_bot(make_bot)
    call_id = cad.add_dispatch("Robbery")
    await dispatch_interaction(bot, slash("note", {"call_id": call_id, "note": "x"}, permissions=MANAGE_GUILD))
    await dispatch_interaction(bot, autocomplete("note", "call_id", "Rob"))
    assert "get_account" not in cad.operations()


async def test_check_says_whether_the_key_may_read_accounts(cad: FakeCad) -> None:
    from bot.preflight import sonoran_preflight
    from bot.services import open_services

    from .helpers import make_settings

    settings = make_settings(cad.url, 2, commands={"dispatchers_from_cad": True})
    async with open_services(settings, with_store=False) as services:
        checks, _ = await sonoran_preflight(settings, services.sonoran)
    (accounts,) = [c for c in checks if c.name == "dispatchers from the CAD"]
    assert accounts.ok and "may read accounts" in accounts.detail
    cad.plan = 2  # Standard: no account reads
    async with open_services(settings, with_store=False) as services:
        checks, _ = await sonoran_preflight(settings, services.sonoran)
    (accounts,) = [c for c in checks if c.name == "dispatchers from the CAD"]
    assert not accounts.ok
