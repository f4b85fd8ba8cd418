"""Sonoran's answers read as Sonoran means them (API v2): "not linked" is never "no unit on duty"
and is cached; a plan error is a plan error on every operation, before anything about the member;
an account removed or banned gets no rights; and a problem that echoes the API key shows it to
nobody: not the member, not the audit channel, not `check`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.cli import report_lines
from bot.preflight import sonoran_preflight
from bot.services import open_services

from .conftest import BotFactory
from .doubles.discord_fakes import MANAGE_GUILD, USER_ID, FakeDiscord, dispatch_interaction, slash
from .doubles.fake_cad import API_KEY, FakeCad
from .helpers import make_settings
from .test_identity import followup_text, note, rights_bot

AUDIT = 3001
pytestmark = pytest.mark.parametrize("api_version", [2], ids=["v2"])


def problem(status: int, detail: str, type_: str | None = None, title: str = "Bad Request") -> dict[str, Any]:
    body = {"type": type_ or f"https://httpstatuses.com/{status}", "title": title, "status": status, "detail": detail}
    return {"status": status, "body": json.dumps(body), "content_type": "application/problem+json"}


async def test_not_linked_is_not_read_as_no_unit_on_duty(
    bot: Any, cad: FakeCad, discord_api: FakeDiscord, api_version: int
) -> None:
    call_id = cad.add_dispatch("Robbery")  # the member has no linked account
    await dispatch_interaction(bot, slash("attach", {"call_id": call_id}))
    text = followup_text(discord_api)
    assert "not linked to a CAD account" in text and "on duty" not in text


async def test_the_v1_wording_of_not_linked_is_not_linked(
    bot: Any, cad: FakeCad, discord_api: FakeDiscord, api_version: int
) -> None:
    call_id = cad.add_dispatch("Robbery")
    cad.fail_next("attach_unit", status=404, body="API ID NOT LINKED TO AN ACCOUNT IN THIS COMMUNITY")
    await dispatch_interaction(bot, slash("attach", {"call_id": call_id}))
    assert "not linked to a CAD account" in followup_text(discord_api)


async def test_a_not_linked_member_is_looked_up_once(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, api_version: int
) -> None:
    bot = await rights_bot(make_bot)
    call_id = cad.add_dispatch("Robbery")
    for _ in range(3):
        await dispatch_interaction(bot, note(call_id))  # no Discord rights, no linked account
    assert "Only dispatchers" in json.dumps(discord_api.replies()[-1])
    assert cad.operations().count("get_account") == 1  # the "no" is cached like a "yes"


@pytest.mark.parametrize(
    "answer",
    [
        problem(402, "Payment Required"),
        problem(403, "This feature is not available.", "https://sonorancad.com/errors/err-ss-101"),
        problem(400, "VERSION PRO REQUIRED"),
        {"status": 400, "body": "VERSION PRO REQUIRED"},
    ],
    ids=["402", "err-ss-101", "VERSION PRO REQUIRED", "plain text"],
)
async def test_plan_errors_come_before_member_errors_on_attach(
    bot: Any, cad: FakeCad, discord_api: FakeDiscord, api_version: int, answer: dict[str, Any]
) -> None:
    call_id = cad.add_dispatch("Robbery")
    cad.add_account(USER_ID)
    cad.fail_next("attach_unit", **answer)
    await dispatch_interaction(bot, slash("attach", {"call_id": call_id}))
    assert "higher Sonoran plan" in followup_text(discord_api)


async def test_check_reports_a_plan_too_low_for_account_lookups(cad: FakeCad, api_version: int) -> None:
    settings = make_settings(cad.url, 2, commands={"dispatchers_from_cad": True})
    # a 404 for the unknown account would mean "the key may look up": a plan error must not read so
    cad.fail_next("get_account", **problem(404, "VERSION PLUS REQUIRED for account lookups", title="Not Found"))
    async with open_services(settings, with_store=False) as services:
        checks, _ = await sonoran_preflight(settings, services.sonoran)
    (accounts,) = [c for c in checks if c.name == "dispatchers from the CAD"]
    assert not accounts.ok and "higher Sonoran plan" in accounts.detail


@pytest.mark.parametrize("status", [3, 4], ids=["removed", "banned"])
async def test_an_account_removed_or_banned_gets_no_rights(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, api_version: int, status: int
) -> None:
    bot = await rights_bot(make_bot)
    call_id = cad.add_dispatch("Robbery")
    cad.add_account(USER_ID, dispatch=True, admin=True, status=status)
    await dispatch_interaction(bot, note(call_id))
    assert "Only dispatchers" in json.dumps(discord_api.replies()[-1])
    assert "add_call_note" not in cad.operations()


async def test_an_echoed_key_reaches_neither_the_member_nor_the_audit_channel(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, api_version: int
) -> None:
    bot = await make_bot(audit={"channel_id": AUDIT})
    call_id = cad.add_dispatch("Robbery")
    echo = problem(400, f"Invalid note for key {API_KEY}", title=f"Rejected {API_KEY.upper()}")
    cad.fail_next("add_call_note", **echo)
    await dispatch_interaction(bot, slash("note", {"call_id": call_id, "note": "x"}, permissions=MANAGE_GUILD))
    reply = followup_text(discord_api)
    assert "The CAD refused the request" in reply and "redacted" in reply
    assert bot.audit is not None and await bot.audit.flush()
    sent = json.dumps(discord_api.sent("POST", rf"/channels/{AUDIT}/messages$")) + json.dumps(discord_api.replies())
    assert API_KEY.lower() not in sent.lower()


async def test_check_prints_no_echoed_key(cad: FakeCad, api_version: int) -> None:
    settings = make_settings(cad.url, 2)
    cad.fail_next("get_version", **problem(400, f"key {API_KEY} is malformed", title=API_KEY))
    async with open_services(settings, with_store=False) as services:
        checks, _ = await sonoran_preflight(settings, services.sonoran)
    printed = "\n".join(report_lines(checks, secrets=[API_KEY]))
    assert "key" in printed and API_KEY.lower() not in printed.lower()
    assert API_KEY.lower() not in "\n".join(c.line() for c in checks).lower()  # redacted where it was read
