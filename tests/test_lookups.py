"""Name and plate lookups, end to end on API v1 and v2: raw interaction payloads through discord.py's
command tree, the sandbox CAD over loopback answering with Sonoran's shapes and refusing malformed
bodies with 400, Discord the strict double. Found by name and plate; what matters on a stop first;
hidden and supervisor-only fields; nothing found; every refusal (with no request sent); the budget,
the cooldown and the hourly cap; the cache per rights; plan errors; the pause after repeated 400s;
audit records without record contents; paging; hostile text."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from bot.core import DispatchBot
from bot.markdown import AT_GUARD

from .conftest import BotFactory
from .doubles.discord_fakes import (
    EPHEMERAL,
    OPTION_TYPES,
    USER_ID,
    FakeDiscord,
    dispatch_interaction,
    press,
    slash,
)
from .doubles.discord_limits import message_errors
from .doubles.fake_cad import FakeCad
from .helpers import GENEROUS_LIMITS

ROLE = "990000000000000001"
AUDIT = 5003
OTHER = "555555555555555556"
THIRD = "555555555555555557"
FOURTH = "555555555555555558"
JANE_PLATE = {"plate": "ABC123"}
JANE = {"first": "Jane", "last": "Doe"}
ON = {"enabled": True, "role_ids": [int(ROLE)], "cooldown_seconds": 0}


def lookup(sub: str, options: dict[str, Any], *, roles: list[str] | None = None, **member: Any) -> dict[str, Any]:
    """A `/lookup <sub>` interaction as Discord sends it: the subcommand as the one option."""
    payload = slash("lookup", None, roles=[ROLE] if roles is None else roles, **member)
    opts = [{"name": k, "type": OPTION_TYPES[type(v)], "value": v} for k, v in options.items()]
    payload["data"]["options"] = [{"name": sub, "type": 1, "options": opts}]
    return payload


def answer(discord_api: FakeDiscord) -> dict[str, Any]:
    """The last thing the member was told (a followup, or a refusal sent as the response)."""
    reply = discord_api.replies()[-1]
    return dict(reply.get("data") or reply)


def text(discord_api: FakeDiscord) -> str:
    body = answer(discord_api)
    return str(body.get("content") or "") + "".join(e.get("description", "") for e in body.get("embeds") or [])


def lookups_sent(cad: FakeCad) -> list[Any]:
    return [r for r in cad.requests if r.operation == "lookup"]


async def audit_embeds(bot: DispatchBot, discord_api: FakeDiscord) -> list[dict[str, Any]]:
    assert bot.audit is not None and await bot.audit.flush()
    return [e for body in discord_api.sent("POST", rf"/channels/{AUDIT}/messages$") for e in body["embeds"]]


@pytest.fixture
def lookups_bot(make_bot: BotFactory) -> BotFactory:
    async def factory(**overrides: Any) -> DispatchBot:
        lookups = {**ON, **overrides.pop("lookups", {})}
        overrides.setdefault("audit", {"channel_id": AUDIT})
        return await make_bot(lookups=lookups, **overrides)

    return factory


# --- found ---------------------------------------------------------------------------------------------
async def test_a_plate_and_a_name_are_found_and_shown_only_to_the_member(
    lookups_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, api_version: int
) -> None:
    bot = await lookups_bot()
    await dispatch_interaction(bot, lookup("plate", {"plate": " abc123 "}))
    body = answer(discord_api)
    assert body["flags"] & EPHEMERAL and body["allowed_mentions"] == {"parse": []}
    assert message_errors(body) == {}
    (embed,) = body["embeds"]
    assert embed["title"] == "Lookup: plate ABC123"
    assert "Model: Karin Sultan" in embed["description"] and "Character: Jane Q Doe" in embed["description"]
    assert embed["footer"]["text"].startswith("5 record(s) · page 1 of 1")
    (request,) = lookups_sent(cad)
    sent = {"first": "", "last": "", "mi": "", "plate": "ABC123", "types": [2, 3, 4, 5], "partial": False}
    if api_version == 2:
        assert (request.method, request.path, request.body) == ("POST", "/v2/general/lookups", sent)
    else:  # all four text keys present, as v1 wants them
        assert request.path == "/general/lookup" and request.body["type"] == "LOOKUP"
        assert request.body["data"] == [sent]

    await dispatch_interaction(bot, lookup("name", {**JANE, "middle_initial": "Q", "partial": True}))
    assert "Arrest Warrant" in text(discord_api) and "Driver License" in text(discord_api)
    assert lookups_sent(cad)[-1].body.get("data", [lookups_sent(cad)[-1].body])[0] == {
        "first": "Jane",
        "last": "Doe",
        "mi": "Q",
        "plate": "",
        "types": [2, 3, 4, 5],
        "partial": True,
    }


async def test_what_matters_on_a_stop_comes_first(
    lookups_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await lookups_bot()
    await dispatch_interaction(bot, lookup("plate", JANE_PLATE))
    description = answer(discord_api)["embeds"][0]["description"]
    summary, first_record, *_ = description.split("\n\n")
    assert summary.splitlines() == [
        "**On a stop:**",
        "🚨 ACTIVE WARRANT: ARMED, DANGEROUS · Warrant: Jane Q Doe — Arrest Warrant",
        "🚨 ACTIVE BOLO: STOLEN VEHICLE · BOLO: ABC123",
        "🚨 REGISTRATION STOLEN · Registration: ABC123 — Vehicle Registration",
        "🚨 LICENSE SUSPENDED · License: Jane Q Doe — Driver License",
    ]
    assert first_record.startswith("🚨 **Warrant: Jane Q Doe — Arrest Warrant** · **ACTIVE WARRANT: ARMED")
    assert description.index("REGISTRATION STOLEN**") < description.index("**Character: Jane Q Doe")
    assert answer(discord_api)["embeds"][0]["color"] == 0xE74C3C  # red: something is flagged
    await dispatch_interaction(bot, lookup("name", {"first": "John", "last": "Smith"}))
    description = answer(discord_api)["embeds"][0]["description"]
    assert description.startswith("**On a stop:** nothing flagged.")  # a closed warrant, a valid license
    assert "Charges: Unpaid fines" in description and "🚨" not in description


async def test_hidden_fields_stay_hidden_and_supervisor_fields_need_supervisor_rights(
    lookups_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, api_version: int
) -> None:
    bot = await lookups_bot(lookups={"allow_cad_rights": True})
    cad.add_account(USER_ID)  # police, no supervisor flag
    await dispatch_interaction(bot, lookup("name", JANE))
    shown = text(discord_api)
    assert "Sex: F" in shown
    assert "Date of Death" not in shown  # its dependency: deceased = YES
    assert "Gang" not in shown  # its section's dependency: sex is not F
    assert "Confidential Informant" not in shown and "Sgt. Reyes" not in shown  # isSupervisor

    supervisor = OTHER
    cad.add_account(supervisor)
    cad.accounts[supervisor]["permissions"]["polSuper"] = True
    await dispatch_interaction(bot, lookup("name", JANE, user_id=supervisor))
    shown = text(discord_api)
    assert ("Confidential Informant: Handler: Sgt. Reyes" in shown) is (api_version == 2)  # v1 reads no rights
    assert "Date of Death" not in shown

    # a supervisor of another family (fire) may look up, but a police record's supervisor field is not theirs
    fire = FOURTH
    cad.add_account(fire)
    cad.accounts[fire]["permissions"].update({"police": False, "fireSuper": True})
    await dispatch_interaction(bot, lookup("name", JANE, user_id=fire))
    shown = text(discord_api)
    assert "Sex: F" in shown or api_version == 1
    assert "Confidential Informant" not in shown and "Sgt. Reyes" not in shown

    (jane,) = [r for r in cad.records if r["sections"][0]["fields"][0]["value"] == "Jane" and r["type"] == 7]
    jane["sections"][1]["fields"][1]["value"] = "YES"  # deceased now: the date of death shows
    await dispatch_interaction(bot, lookup("name", {**JANE, "partial": True}, user_id=THIRD))
    assert "Date of Death: 2026-10-31" in text(discord_api)  # dates as the CAD wrote them


async def test_nothing_found_is_a_plain_sentence(lookups_bot: BotFactory, discord_api: FakeDiscord) -> None:
    bot = await lookups_bot()
    await dispatch_interaction(bot, lookup("plate", {"plate": "NOPE-1"}))
    body = answer(discord_api)
    assert body["content"] == "No records found for plate NOPE-1." and not body.get("embeds")
    assert body["flags"] & EPHEMERAL


# --- refusals -----------------------------------------------------------------------------------------
async def test_refusals_say_why_send_nothing_and_are_audited(
    lookups_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, api_version: int
) -> None:
    bot = await lookups_bot(lookups={"enabled": False})
    await dispatch_interaction(bot, lookup("plate", JANE_PLATE))
    assert text(discord_api) == "Lookups are turned off on this server."
    bot = await lookups_bot(lookups={"channel_ids": [4242]})
    await dispatch_interaction(bot, lookup("plate", JANE_PLATE))
    assert "not allowed in this channel" in text(discord_api)
    bot = await lookups_bot()
    await dispatch_interaction(bot, lookup("plate", JANE_PLATE, roles=[]))
    assert "You may not look up records" in text(discord_api)
    crafted = [
        ("name", {"first": "   ", "last": ""}, "Give a first or a last name to look up."),
        ("name", {"first": "Jane", "last": "Doe1"}, "The last name may hold only letters"),
        ("name", {"first": "J" * 31, "last": "Doe"}, "The first name is over 30 characters."),
        ("name", {**JANE, "middle_initial": "QQ"}, "The middle initial is one letter."),
        ("plate", {"plate": "  "}, "Give a plate to look up."),
        ("plate", {"plate": "AB$12"}, "A plate holds only letters and digits"),
        ("plate", {"plate": "ABCDEFGHIJK"}, "A plate is at most 10 characters."),
        ("plate", {"plate": "ÄBC123"}, "A plate holds only letters and digits"),
    ]
    for sub, options, why in crafted:
        await dispatch_interaction(bot, lookup(sub, options))
        assert text(discord_api).startswith(why) and text(discord_api).endswith("Nothing was looked up.")
        assert answer(discord_api)["flags"] & EPHEMERAL
    assert lookups_sent(cad) == []
    assert "ABCDEFGHIJK" not in json.dumps(discord_api.replies())  # the input is not echoed
    titles = [e["title"] for e in await audit_embeds(bot, discord_api)]
    assert titles == ["/lookup: refused"] * (1 + len(crafted))  # the first bots had audits of their own
    queries = [f["value"] for e in await audit_embeds(bot, discord_api) for f in e["fields"] if f["name"] == "Query"]
    assert "plate AB$12" in [q.replace("\\", "") for q in queries]


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
async def test_cad_rights_let_police_dispatch_and_supervisors_look_up_and_nobody_else(
    lookups_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, api_version: int
) -> None:
    bot = await lookups_bot(lookups={"allow_cad_rights": True})
    await dispatch_interaction(bot, lookup("plate", JANE_PLATE, roles=[]))  # not linked
    assert "You may not look up records" in text(discord_api)
    cad.add_account(OTHER)
    cad.accounts[OTHER]["permissions"]["police"] = False  # a civilian account
    await dispatch_interaction(bot, lookup("plate", JANE_PLATE, roles=[], user_id=OTHER))
    assert "You may not look up records" in text(discord_api)
    cad.add_account(THIRD)  # police
    await dispatch_interaction(bot, lookup("plate", JANE_PLATE, roles=[], user_id=THIRD))
    assert "Karin Sultan" in text(discord_api)
    assert len(lookups_sent(cad)) == 1
    # the CAD cannot say (its budget spent, or down): nothing is granted, nothing waits
    bot = await lookups_bot(
        lookups={"allow_cad_rights": True}, sonoran={"rate_limits": {**GENEROUS_LIMITS, "get_account": 1}}
    )
    cad.add_account(USER_ID)
    await dispatch_interaction(bot, lookup("plate", JANE_PLATE, roles=[], user_id=OTHER))  # spends the budget
    await dispatch_interaction(bot, lookup("plate", JANE_PLATE, roles=[]))
    assert "You may not look up records" in text(discord_api)
    assert len(lookups_sent(cad)) == 1


@pytest.mark.parametrize("api_version", [1], ids=["v1"])
async def test_on_v1_cad_rights_grant_nothing(
    lookups_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, api_version: int
) -> None:
    bot = await lookups_bot(lookups={"allow_cad_rights": True})
    cad.add_account(USER_ID)
    await dispatch_interaction(bot, lookup("plate", JANE_PLATE, roles=[]))
    assert "You may not look up records" in text(discord_api)
    assert "get_account" not in cad.operations() and lookups_sent(cad) == []


# --- budget, cooldown, cap, cache -------------------------------------------------------------------------
async def test_the_budget_is_kept_and_the_game_server_keeps_its_share(
    lookups_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, tmp_path: Path
) -> None:
    bot = await lookups_bot(sonoran={"rate_limits": {**GENEROUS_LIMITS, "lookup": 2}})
    for plate in ("AAA1", "AAA2", "AAA3"):
        await dispatch_interaction(bot, lookup("plate", {"plate": plate}))
    assert "rate-limiting us, try again in" in text(discord_api)
    assert len(lookups_sent(cad)) == 2
    # a budget that would take the game server's share is refused
    from bot.config import ConfigError, load_settings

    path = tmp_path / "config.toml"
    path.write_text(
        '[discord]\ntoken = "x.y.z"\n[sonoran]\ncommunity_id = "c"\napi_key = "k"\n[sonoran.rate_limits]\nlookup = 25\n'
    )
    with pytest.raises(ConfigError, match=r"sonoran\.rate_limits\.lookup: at most 20: Sonoran allows 30 lookups"):
        load_settings(path, environ={})


async def test_a_members_cooldown_and_hourly_cap(
    lookups_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await lookups_bot(lookups={"cooldown_seconds": 30})
    await dispatch_interaction(bot, lookup("plate", JANE_PLATE))
    await dispatch_interaction(bot, lookup("plate", {"plate": "XYZ789"}))
    assert text(discord_api) == "Slow down: you can look up again in 30 s."
    await dispatch_interaction(bot, lookup("plate", {"plate": "XYZ789"}, user_id=OTHER))  # others are not held
    assert "Vapid Stanier" in text(discord_api)
    assert len(lookups_sent(cad)) == 2

    bot = await lookups_bot(lookups={"hourly_cap": 2})
    for plate in ("AAA1", "AAA2", "AAA3"):
        await dispatch_interaction(bot, lookup("plate", {"plate": plate}))
    assert text(discord_api) == "You have made as many lookups as one hour allows. Try again in 60 min."
    assert len(lookups_sent(cad)) == 4
    cad.fail_next("lookup", status=503, body="down")  # the CAD failing does not count against the member
    bot = await lookups_bot(lookups={"hourly_cap": 1})
    await dispatch_interaction(bot, lookup("plate", {"plate": "AAA1"}))
    assert "not answering" in text(discord_api)
    await dispatch_interaction(bot, lookup("plate", {"plate": "AAA1"}))
    assert text(discord_api) == "No records found for plate AAA1."


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
async def test_the_cache_answers_the_same_query_only_for_the_same_rights(
    lookups_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, api_version: int
) -> None:
    bot = await lookups_bot(lookups={"allow_cad_rights": True})
    for member in (USER_ID, OTHER, THIRD):
        cad.add_account(member)
    cad.accounts[THIRD]["permissions"]["polSuper"] = True
    await dispatch_interaction(bot, lookup("name", JANE))
    await dispatch_interaction(bot, lookup("name", JANE, user_id=OTHER))  # the same rights: from the cache
    assert len(lookups_sent(cad)) == 1 and "Sgt. Reyes" not in text(discord_api)
    await dispatch_interaction(bot, lookup("name", JANE, user_id=THIRD))  # a supervisor: asked again
    assert len(lookups_sent(cad)) == 2 and "Sgt. Reyes" in text(discord_api)
    await dispatch_interaction(bot, lookup("name", JANE, user_id=OTHER))
    assert len(lookups_sent(cad)) == 2 and "Sgt. Reyes" not in text(discord_api)
    await dispatch_interaction(bot, lookup("name", {**JANE, "partial": True}))  # another query
    assert len(lookups_sent(cad)) == 3


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
async def test_two_members_asking_the_same_at_once_share_one_request(
    lookups_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, api_version: int
) -> None:
    bot = await lookups_bot()
    cad.fail_next("lookup", delay=0.3, passthrough=True)  # a slow CAD: the second asks while the first waits
    await dispatch_interaction(bot, lookup("plate", JANE_PLATE), lookup("plate", JANE_PLATE, user_id=OTHER))
    assert len(lookups_sent(cad)) == 1
    answers = [r for r in discord_api.replies() if r.get("embeds")]
    assert len(answers) == 2 and all("Karin Sultan" in a["embeds"][0]["description"] for a in answers)


def test_check_says_whether_lookups_can_work() -> None:
    from bot.preflight import lookups_check
    from bot.sonoran import PlanInfo

    from .helpers import make_settings

    plus, standard = PlanInfo(level=3, name="PLUS"), PlanInfo(level=2, name="STANDARD")
    settings = make_settings("http://127.0.0.1:9", 2, lookups={"enabled": True})
    assert not lookups_check(settings, plus).ok and "nobody may look up" in lookups_check(settings, plus).detail
    assert "Plus plan" in lookups_check(settings, standard).detail
    # Sonoran's own v2 example answers {"version": 2, "name": "PLUS"}: the name says Plus
    assert "Plus plan" not in lookups_check(settings, PlanInfo(level=2, name="PLUS")).detail
    settings = make_settings("http://127.0.0.1:9", 2, lookups={"enabled": True, "allow_cad_rights": True})
    check = lookups_check(settings, plus)
    assert check.ok and "at most 20 lookups a minute" in check.detail
    settings = make_settings("http://127.0.0.1:9", 1, lookups={"enabled": True, "allow_cad_rights": True})
    assert "v1 cannot read CAD rights" in lookups_check(settings, plus).detail


# --- CAD errors -------------------------------------------------------------------------------------------
async def test_a_plan_without_lookups_says_which_plan_they_need(
    lookups_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await lookups_bot()
    cad.plan = 2  # Standard: lookups need Plus
    await dispatch_interaction(bot, lookup("plate", JANE_PLATE))
    assert text(discord_api) == "Lookups need Sonoran's Plus plan (or higher) for this community. Ask an admin."
    (audit,) = await audit_embeds(bot, discord_api)
    assert audit["title"] == "/lookup: failed" and "Plus plan" in json.dumps(audit)


async def test_repeated_400s_pause_lookups_with_one_log_line(
    lookups_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    bot = await lookups_bot()
    caplog.set_level(logging.WARNING, logger="bot.lookups.guard")
    for n in range(3):
        cad.fail_next("lookup", status=400, body="INVALID EMPTY SEARCH")
        await dispatch_interaction(bot, lookup("plate", {"plate": f"BAD{n}"}))
        assert "The CAD refused the request: INVALID EMPTY SEARCH" in text(discord_api)
    assert len(lookups_sent(cad)) == 3  # a 400 is never sent again
    await dispatch_interaction(bot, lookup("plate", JANE_PLATE))
    assert text(discord_api).startswith("Lookups are paused for 10 min: the CAD refused several lookups")
    assert len(lookups_sent(cad)) == 3
    (line,) = [r.getMessage() for r in caplog.records if "paused" in r.getMessage()]
    assert "lookups paused for 10 min" in line and "INVALID EMPTY SEARCH" in line


# --- audit ------------------------------------------------------------------------------------------------
async def test_every_lookup_is_audited_with_its_query_and_count_never_its_records(
    lookups_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await lookups_bot()
    await dispatch_interaction(bot, lookup("plate", JANE_PLATE))
    await dispatch_interaction(bot, lookup("name", {"first": "Nobody", "last": "Here"}))
    await dispatch_interaction(bot, lookup("plate", JANE_PLATE, roles=[]))
    embeds = await audit_embeds(bot, discord_api)
    assert [e["title"] for e in embeds] == ["/lookup: done", "/lookup: done", "/lookup: refused"]
    fields = [{f["name"]: f["value"] for f in e["fields"]} for e in embeds]
    assert fields[0]["Query"] == "plate ABC123 · 5 found" and fields[0]["Member"] == f"Officer Tester ({USER_ID})"
    assert fields[1]["Query"] == "name Nobody Here · 0 found"
    assert fields[2]["Query"] == "plate ABC123" and "may not look up" in fields[2]["Why"]
    posted = json.dumps(embeds)
    for secret in ("Jane", "Doe", "Karin", "Sultan", "ARMED", "Armed robbery", "STOLEN", "SUSPENDED"):
        assert secret not in posted


# --- paging and hostile text -------------------------------------------------------------------------------
async def test_many_records_are_paged_for_the_member_only(
    lookups_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    from bot.sandbox.records import character, field, section

    for n in range(40):
        notes = section("Notes", [field("notes", "Notes", f"Record {n:02} " + "x" * 300)])
        cad.records.append(character("Paul", f"Page{n:02}", "", "1999-01-01", notes))
    bot = await lookups_bot()
    await dispatch_interaction(bot, lookup("name", {"first": "Paul", "last": "Page", "partial": True}))
    body = answer(discord_api)
    buttons = [b["label"] for b in body["components"][0]["components"]]
    count = int(buttons[1].split("/")[1])
    assert count >= 3 and buttons == ["◀ Previous", f"1/{count}", "Next ▶"]
    assert body["embeds"][0]["footer"]["text"] == f"40 record(s) · page 1 of {count} · only you see this"
    pages = discord_api.last_interaction_message()
    await press(bot, pages, "Next ▶", user_id=OTHER)  # another member cannot page it
    assert "belong to the member who ran" in text(discord_api)
    seen = body["embeds"][0]["description"]
    for _ in range(count - 1):
        await press(bot, pages, "Next ▶")
        page = discord_api.sent("POST", r"/callback$")[-1]
        assert page["type"] == 7 and message_errors(page["data"]) == {}
        seen += page["data"]["embeds"][0]["description"]
    assert all(f"Record {n:02}" in seen for n in range(40))
    assert page["data"]["embeds"][0]["footer"]["text"].startswith(f"40 record(s) · page {count} of {count}")
    assert len(lookups_sent(cad)) == 1  # paging asks the CAD nothing


async def test_hostile_text_in_records_is_shown_inert_and_pings_nobody(
    lookups_bot: BotFactory, discord_api: FakeDiscord
) -> None:
    bot = await lookups_bot()
    await dispatch_interaction(bot, lookup("name", {"first": "Mallory", "last": "Hacker"}))
    body = answer(discord_api)
    assert body["allowed_mentions"] == {"parse": []}
    description = body["embeds"][0]["description"]
    assert "@everyone" not in description and f"@{AT_GUARD[1:]}everyone" in description
    assert "\\<@&123\\>" not in description and "\\<@" + AT_GUARD[1:] + "&123>" in description
    assert "[free nitro](" not in description and "\\[free nitro\\]\\(https://evil.example\\)" in description
    assert "\\|\\|spoiler\\|\\|" in description and "\\`code\\`" in description
    assert "Date of Birth: \\# 2000-01-01" in description
    assert "\\*\\*Wanted\\*\\*" in description


async def test_odd_records_cost_only_themselves(
    lookups_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    from bot.sandbox.records import field, section

    good = {
        "type": 5,
        "name": "Vehicle Registration",
        "sections": [section("Vehicle", [field("plate", "Plate", "ODD1")])],
    }
    odd: list[Any] = [
        "junk",
        None,
        {"type": "5", "sections": "not a list"},
        {
            "type": 2,
            "sections": [{"category": 1, "fields": [{"uid": "flags", "data": {"flags": [float("inf"), None, "X"]}}]}],
        },
        {
            "type": True,
            "name": 12,
            "sections": [{"fields": [{"uid": "n", "label": "Big", "value": float("inf")}, 7, {}]}],
        },
        {"type": 4, "sections": [{"fields": [{"uid": "status", "label": "Status", "value": ["SUSPENDED", {"x": 1}]}]}]},
        {"type": 3, "sections": [{"dependency": {"type": "WEIRD"}, "fields": [{"label": "Hidden", "value": "h"}]}]},
        {"type": 5, "sections": [{"fields": [{"label": "Long", "value": "y" * 50_000}]}]},
        good,
    ]
    body = json.dumps({"records": odd}).replace("Infinity", "1e400")  # JSON's way to say a number too big
    cad.fail_next("lookup", status=200, body=body, content_type="application/json")
    bot = await lookups_bot()
    await dispatch_interaction(bot, lookup("plate", {"plate": "ODD1"}))
    reply = answer(discord_api)
    assert message_errors(reply) == {}
    shown = "".join(e["description"] for e in reply["embeds"])
    assert "Plate: ODD1" in shown and "Hidden" not in shown
    assert "ACTIVE WARRANT: X" in shown and "LICENSE SUSPENDED" in shown
    assert reply["embeds"][0]["footer"]["text"].startswith("7 record(s)")  # the two that are no objects left out


@pytest.mark.parametrize(
    ("kind", "value", "shown"),
    [
        ("EQUAL", "YES", True),
        ("EQUAL", "yes", False),  # as the CAD compares: exactly
        ("NOTEQUAL", "YES", False),
        ("NOTEQUAL", "", True),
        ("CONTAINS", "ARMED, YES", True),
        ("CONTAINS", "NO", False),
        ("SOMEDAY", "YES", False),  # a rule the bot does not know hides what it guards
    ],
)
def test_dependencies_hide_as_sonorans_webhooks_do(kind: str, value: str, shown: bool) -> None:
    from bot.lookups.render import depends_ok
    from bot.sonoran.records import Dependency

    assert depends_ok(Dependency(kind, "deceased", ("YES",)), {"deceased": value}) is shown
    assert depends_ok(None, {}) is True
