"""The audit channel and the abuse controls of /911, end to end through raw interaction payloads on
API v1 and v2: every write through a slash command and every refusal is one embed in the audit
channel; a failing audit channel delays nothing."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bot.audit import DONE, AuditRecord
from bot.core import DispatchBot

from .conftest import BotFactory
from .doubles.discord_fakes import (
    MANAGE_GUILD,
    USER_ID,
    ChannelFault,
    FakeDiscord,
    dispatch_interaction,
    press,
    slash,
)
from .doubles.fake_cad import FakeCad
from .test_dispatch import _ask_to_close, last_reply, reply_text

AUDIT = 3001
BLOCKED_ROLE = "777777777777777777"
FILE = {"location": "Grove St", "description": "House fire"}


@pytest.fixture
async def audited(make_bot: BotFactory) -> DispatchBot:
    return await make_bot(audit={"channel_id": AUDIT}, commands={"cooldown_911_seconds": 0})


async def audit_embeds(bot: DispatchBot, discord_api: FakeDiscord) -> list[dict[str, Any]]:
    assert bot.audit is not None
    assert await bot.audit.flush()
    bodies = discord_api.sent("POST", rf"/channels/{AUDIT}/messages$")
    for body in bodies:
        assert body["allowed_mentions"] == {"parse": []}  # names the member, pings nobody
    return [embed for body in bodies for embed in body["embeds"]]


def fields(embed: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f["value"] for f in embed.get("fields", [])}


async def test_every_write_is_audited(audited: DispatchBot, cad: FakeCad, discord_api: FakeDiscord) -> None:
    await dispatch_interaction(audited, slash("911", FILE, nick="@everyone <@&1>"))
    call_id = max(cad.servers[1].emergency)
    dispatch_id = cad.add_dispatch("Robbery")
    await dispatch_interaction(
        audited, slash("note", {"call_id": dispatch_id, "note": "en route"}, permissions=MANAGE_GUILD)
    )
    await dispatch_interaction(audited, slash("remove911", {"call_id": call_id}, permissions=MANAGE_GUILD))
    question = await _ask_to_close(audited, discord_api, dispatch_id)
    await press(audited, question, f"Close call #{dispatch_id}")
    embeds = await audit_embeds(audited, discord_api)
    assert [e["title"] for e in embeds] == [
        f"/911 call #{call_id}: done",
        f"/note call #{dispatch_id}: done",
        f"/remove911 call #{call_id}: done",
        f"/close call #{dispatch_id}: done",
    ]
    member = fields(embeds[0])["Member"]
    assert USER_ID in member and "@everyone" not in member.replace("@\u200beveryone", "")  # escaped, inert
    assert fields(embeds[0])["Server"] == "1" and fields(embeds[0])["When"].startswith("<t:")


async def test_cad_errors_and_unknown_outcomes_are_audited(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await make_bot(audit={"channel_id": AUDIT}, sonoran={"timeout_seconds": 0.2})
    cad.fail_next("add_call_note", status=500, body="oops")
    await dispatch_interaction(bot, slash("note", {"call_id": 77, "note": "x"}, permissions=MANAGE_GUILD))
    cad.fail_next("call_911", delay=0.5, passthrough=True)
    await dispatch_interaction(bot, slash("911", FILE))
    first, second = await audit_embeds(bot, discord_api)
    assert first["title"] == "/note call #77: failed" and "not answering" in fields(first)["Why"]
    assert second["title"] == "/911: outcome unknown" and "unknown whether" in fields(second)["Why"]


async def test_refusals_are_audited(audited: DispatchBot, discord_api: FakeDiscord) -> None:
    await dispatch_interaction(audited, slash("note", {"call_id": 5, "note": "x"}))  # no dispatcher rights
    (embed,) = await audit_embeds(audited, discord_api)
    assert embed["title"] == "/note call #5: refused" and "Only dispatchers" in fields(embed)["Why"]


async def test_the_cooldown_refusal_is_audited(make_bot: BotFactory, discord_api: FakeDiscord) -> None:
    bot = await make_bot(audit={"channel_id": AUDIT})
    await dispatch_interaction(bot, slash("911", FILE))
    await dispatch_interaction(bot, slash("911", FILE))
    titles = [e["title"] for e in await audit_embeds(bot, discord_api)]
    assert titles[1] == "/911: refused" and len(titles) == 2


async def test_a_blocked_role_cannot_file_calls(make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord) -> None:
    bot = await make_bot(audit={"channel_id": AUDIT}, commands={"blocked_role_ids": [int(BLOCKED_ROLE)]})
    await dispatch_interaction(bot, slash("911", FILE, roles=[BLOCKED_ROLE], permissions=MANAGE_GUILD))
    assert "one of your roles blocks it" in reply_text(last_reply(discord_api))
    assert cad.operations() == []
    (embed,) = await audit_embeds(bot, discord_api)
    assert embed["title"] == "/911: refused" and "blocks it" in fields(embed)["Why"]


async def test_open_calls_per_member_are_limited(audited: DispatchBot, cad: FakeCad, discord_api: FakeDiscord) -> None:
    for _ in range(2):
        await dispatch_interaction(audited, slash("911", FILE))
    await dispatch_interaction(audited, slash("911", FILE))
    assert "You already have 2 open 911 call(s)" in reply_text(last_reply(discord_api))
    assert cad.operations() == ["call_911", "call_911"]
    # counted from the call list the bot already has, by the metaData it writes: no extra request
    await audited.board.refresh(1)
    await dispatch_interaction(audited, slash("911", FILE))
    assert "You already have 2" in reply_text(last_reply(discord_api))
    for call_id in list(cad.servers[1].emergency):  # dispatch took both calls
        del cad.servers[1].emergency[call_id]
    await audited.board.refresh(1)
    await dispatch_interaction(audited, slash("911", FILE))
    assert "filed" in reply_text(last_reply(discord_api))
    assert cad.operations().count("call_911") == 3
    titles = [e["title"] for e in await audit_embeds(audited, discord_api)]
    assert titles.count("/911: refused") == 2


async def test_a_failing_audit_channel_delays_nothing_and_catches_up(
    audited: DispatchBot, cad: FakeCad, discord_api: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    assert audited.audit is not None
    for _ in range(10):
        discord_api.faults.append(ChannelFault(403, 50001, "Missing Access"))
    with caplog.at_level(logging.WARNING, logger="bot.audit"):
        await dispatch_interaction(audited, slash("911", FILE))
        assert "filed" in reply_text(last_reply(discord_api))  # the member's answer did not wait
        for _ in range(3):
            assert not await audited.audit.flush()
    assert len([r for r in caplog.records if "audit: channel" in r.getMessage()]) == 1  # once per change
    discord_api.faults.clear()
    embeds = await audit_embeds(audited, discord_api)  # the channel works again: the record arrives
    assert [e["title"] for e in embeds][-1].endswith(": done")


async def test_a_burst_of_records_is_batched(audited: DispatchBot, discord_api: FakeDiscord) -> None:
    assert audited.audit is not None
    for number in range(15):
        audited.audit.record(AuditRecord("Dispatcher Dan", 42, "/note", 1, DONE, call_id=number))
    assert len(await audit_embeds(audited, discord_api)) == 15
    assert len(discord_api.sent("POST", rf"/channels/{AUDIT}/messages$")) == 2  # 10 + 5
