"""Feed posts as a dispatch desk, end to end through raw interaction payloads on API v1 and v2: the
components each post carries, every action from a one-call and a ten-call post, the refusals, a
crafted click, a click after a restart, a click on an ended call, the note modal's bounds, and the
audit records. Discord is the strict double (its component limits included)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from bot.core import DispatchBot

from .conftest import BotFactory
from .doubles.discord_fakes import (
    CHANNEL_ID,
    MANAGE_GUILD,
    USER_ID,
    FakeDiscord,
    button,
    dispatch_interaction,
    message_payload,
    modal_submit,
    press,
    select,
    slash,
)
from .doubles.fake_cad import FakeCad
from .test_feed import feed_of, posts

FEED = int(CHANNEL_ID)  # the channel the fake interactions come from
AUDIT = 3001
CALLS_911 = [{"server_id": 1, "channel_id": FEED}]
DISPATCH = [{"server_id": 1, "channel_id": FEED, "calls": [], "dispatch": True}]


def components(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for row in message.get("components") or [] for item in row["components"]]


def replies(discord_api: FakeDiscord) -> list[dict[str, Any]]:
    return discord_api.sent("POST", r"/interactions/\d+/[^/]+/callback$")


def last_text(discord_api: FakeDiscord) -> str:
    data = replies(discord_api)[-1].get("data") or {}
    return str(data.get("content", ""))


async def posted(bot: DispatchBot, discord_api: FakeDiscord) -> list[dict[str, Any]]:
    await feed_of(bot).poll_once()
    return discord_api.channel_messages(FEED)


async def click(bot: DispatchBot, message: dict[str, Any], custom_id: str, **member: Any) -> None:
    await dispatch_interaction(bot, button(custom_id, message["id"], message=message, **member))


def panel_message(discord_api: FakeDiscord) -> dict[str, Any]:
    """The ephemeral panel the last select opened, as Discord shows it (its buttons included)."""
    data = replies(discord_api)[-1]["data"]
    return message_payload(CHANNEL_ID, data["content"], flags=64, components=data["components"])


def with_button(message: dict[str, Any], custom_id: str) -> dict[str, Any]:
    """`message` as if it carried one more button (a crafted or stale component)."""
    row = {"type": 1, "components": [{"type": 2, "style": 4, "label": "x", "custom_id": custom_id}]}
    return {**message, "components": [*message.get("components", []), row]}


async def confirm(bot: DispatchBot, discord_api: FakeDiscord, **member: Any) -> None:
    """Presses Confirm under the latest question, as the member sees it."""
    question = discord_api.last_interaction_message()
    assert question["flags"] & 64  # ephemeral
    confirm_label = next(c["label"] for c in components(question) if c["label"] != "Cancel")
    await press(bot, question, confirm_label, **member)


# --- what each post carries --------------------------------------------------------------------------
async def test_a_one_call_post_carries_its_buttons(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await make_bot(feeds=CALLS_911)
    call_id = cad.add_911()
    (message,) = await posted(bot, discord_api)
    assert [(c["label"], c["custom_id"]) for c in components(message)] == [("Remove", f"card:remove:1:{call_id}")]


async def test_a_one_dispatch_call_post_carries_note_and_close(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, api_version: int
) -> None:
    bot = await make_bot(feeds=DISPATCH)
    dispatch_id = cad.add_dispatch("Robbery")
    (message,) = await posted(bot, discord_api)
    expected = [("Note", f"card:note:1:{dispatch_id}"), ("Close", f"card:close:1:{dispatch_id}")]
    if api_version == 2:  # the CAD targets members by Discord id on v2 only
        expected += [("Attach me", f"card:attach:1:{dispatch_id}"), ("Detach me", f"card:detach:1:{dispatch_id}")]
    assert [(c["label"], c["custom_id"]) for c in components(message)] == expected
    assert posts(discord_api, FEED)[0]["allowed_mentions"] == {"parse": []}


async def test_a_ten_call_post_carries_a_menu_of_its_calls(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await make_bot(feeds=CALLS_911)
    ids = [cad.add_911(f"Caller {n}", f"{n} Grove St", "x") for n in range(10)]
    (message,) = await posted(bot, discord_api)
    (menu,) = components(message)
    assert menu["type"] == 3 and menu["custom_id"] == "card:pick:911:1"
    assert [o["value"] for o in menu["options"]] == [str(i) for i in ids]
    assert menu["options"][0]["label"] == f"#{ids[0]} · Caller 0 · 0 Grove St"


async def test_an_ended_post_carries_nothing(make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord) -> None:
    bot = await make_bot(feeds=CALLS_911)
    call_id = cad.add_911()
    await posted(bot, discord_api)
    del cad.servers[1].emergency[call_id]
    await feed_of(bot).poll_once()
    (edit,) = discord_api.sent("PATCH", rf"/channels/{FEED}/messages/\d+$")
    assert edit["components"] == []


# --- the actions ---------------------------------------------------------------------------------------------
async def test_remove_from_a_one_call_post(make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord) -> None:
    bot = await make_bot(feeds=CALLS_911, audit={"channel_id": AUDIT})
    call_id = cad.add_911()
    (message,) = await posted(bot, discord_api)
    await click(bot, message, f"card:remove:1:{call_id}")
    assert f"Remove 911 call #{call_id} from the CAD?" in last_text(discord_api)
    assert "remove_911" not in cad.operations()  # nothing before Confirm
    await confirm(bot, discord_api)
    assert cad.operations().count("remove_911") == 1 and call_id not in cad.servers[1].emergency
    edited = discord_api.sent("PATCH", r"/messages/@original$")[-1]
    assert edited["content"] == f"911 call #{call_id} removed."
    await feed_of(bot).poll_once()  # the card shows who did it, and loses its buttons
    edit = discord_api.sent("PATCH", rf"/channels/{FEED}/messages/\d+$")[-1]
    assert "Removed by user555" in json.dumps(edit["embeds"][0])
    assert edit["components"] == []
    assert bot.audit is not None and await bot.audit.flush()
    audit = discord_api.sent("POST", rf"/channels/{AUDIT}/messages$")[-1]["embeds"]
    assert audit[-1]["title"] == f"card Remove call #{call_id}: done"


async def test_close_and_note_from_a_ten_call_post(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await make_bot(feeds=DISPATCH)
    ids = [cad.add_dispatch(f"Call {n}") for n in range(10)]
    (message,) = await posted(bot, discord_api)
    target = ids[3]
    await dispatch_interaction(bot, select("card:pick:dispatch:1", [str(target)], message["id"], message=message))
    panel = replies(discord_api)[-1]["data"]
    assert panel["flags"] & 64 and f"Call #{target}" in panel["content"]
    labels = [c["label"] for c in panel["components"][0]["components"]]
    assert labels[:2] == ["Note", "Close"]  # the second click is on the panel

    panel = panel_message(discord_api)
    await click(bot, panel, f"card:note:1:{target}")
    modal = replies(discord_api)[-1]
    assert modal["type"] == 9
    (text_input,) = modal["data"]["components"][0]["components"]
    assert text_input["max_length"] == 1000 and text_input["min_length"] == 1  # bounded like /note
    await dispatch_interaction(
        bot, modal_submit(modal["data"]["custom_id"], {text_input["custom_id"]: "Suspect fled north"})
    )
    (note,) = [r for r in cad.requests if r.operation == "add_call_note"]
    assert "Suspect fled north" in json.dumps(note.body) and "user555" in json.dumps(note.body)  # signed

    await click(bot, panel, f"card:close:1:{target}")
    await confirm(bot, discord_api)
    assert cad.operations().count("close_call") == 1
    await feed_of(bot).poll_once()
    edit = discord_api.sent("PATCH", rf"/channels/{FEED}/messages/\d+$")[-1]
    closed = next(e for e in edit["embeds"] if f"#{target}" in e["title"])
    assert "(closed)" in closed["title"] and "Closed by user555" in json.dumps(closed)
    (menu,) = [item for row in edit["components"] for item in row["components"]]
    assert str(target) not in [o["value"] for o in menu["options"]]  # the ended call left the menu


# --- refusals -----------------------------------------------------------------------------------------------
async def test_a_member_without_rights_is_refused_and_audited(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await make_bot(feeds=CALLS_911, audit={"channel_id": AUDIT})
    call_id = cad.add_911()
    (message,) = await posted(bot, discord_api)
    await click(bot, message, f"card:remove:1:{call_id}", permissions=0)
    assert "Only dispatchers" in last_text(discord_api)
    assert "remove_911" not in cad.operations()
    assert bot.audit is not None and await bot.audit.flush()
    (audit,) = discord_api.sent("POST", rf"/channels/{AUDIT}/messages$")[-1]["embeds"]
    assert audit["title"] == f"card Remove call #{call_id}: refused"


async def test_a_crafted_click_calls_nothing(make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord) -> None:
    bot = await make_bot(feeds=CALLS_911, audit={"channel_id": AUDIT})
    cad.add_911()
    (message,) = await posted(bot, discord_api)
    other = cad.add_911()  # never posted in this channel
    await click(bot, with_button(message, f"card:remove:1:{other}"), f"card:remove:1:{other}")
    await click(bot, with_button(message, "card:close:1:5"), "card:close:1:5")  # never offered here
    assert "not shown in this channel" in last_text(discord_api)
    assert "remove_911" not in cad.operations() and "close_call" not in cad.operations()
    assert bot.audit is not None and await bot.audit.flush()
    titles = [e["title"] for body in discord_api.sent("POST", rf"/channels/{AUDIT}/messages$") for e in body["embeds"]]
    assert titles == [f"card Remove call #{other}: refused", "card Close call #5: refused"]


async def test_a_click_on_a_call_that_ended_meanwhile(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await make_bot(feeds=CALLS_911)
    call_id = cad.add_911()
    (message,) = await posted(bot, discord_api)
    del cad.servers[1].emergency[call_id]
    await feed_of(bot).poll_once()  # the post loses its button; a member's screen may not have caught up
    await click(bot, with_button(message, f"card:remove:1:{call_id}"), f"card:remove:1:{call_id}")
    assert last_text(discord_api) == f"Call #{call_id} is no longer active."
    assert "remove_911" not in cad.operations()


async def test_a_click_after_a_restart(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, tmp_path: Path
) -> None:
    state = tmp_path / "desk.sqlite3"
    first = await make_bot(feeds=CALLS_911, state_path=state)
    call_id = cad.add_911()
    (message,) = await posted(first, discord_api)
    await first.close()
    second = await make_bot(feeds=CALLS_911, state_path=state)  # a new bot on the same state file
    await click(second, message, f"card:remove:1:{call_id}")
    await confirm(second, discord_api)
    assert cad.operations().count("remove_911") == 1


async def test_the_note_modal_is_bounded_and_an_empty_note_is_refused(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await make_bot(feeds=DISPATCH)
    target = cad.add_dispatch("Robbery")
    (message,) = await posted(bot, discord_api)
    await click(bot, message, f"card:note:1:{target}")
    modal = replies(discord_api)[-1]
    assert discord_api.refused == []  # within Discord's modal limits (the strict double checks them)
    (text_input,) = modal["data"]["components"][0]["components"]
    assert text_input["max_length"] == 1000 and text_input["min_length"] == 1
    # Discord enforces min_length in its client; a crafted submit is checked here too
    await dispatch_interaction(bot, modal_submit(modal["data"]["custom_id"], {text_input["custom_id"]: "   "}))
    assert last_text(discord_api) == "The note is empty: nothing was added."
    assert "add_call_note" not in cad.operations()


async def test_remove_from_a_ten_call_post(make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord) -> None:
    bot = await make_bot(feeds=CALLS_911)
    ids = [cad.add_911(f"Caller {n}", "Grove St", "x") for n in range(10)]
    (message,) = await posted(bot, discord_api)
    await dispatch_interaction(bot, select("card:pick:911:1", [str(ids[7])], message["id"], message=message))
    panel = panel_message(discord_api)
    assert [c["label"] for c in components(panel)] == ["Remove"]
    await click(bot, panel, f"card:remove:1:{ids[7]}")
    await confirm(bot, discord_api)
    assert ids[7] not in cad.servers[1].emergency and cad.operations().count("remove_911") == 1


async def test_note_and_close_from_a_one_call_post_are_audited(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await make_bot(feeds=DISPATCH, audit={"channel_id": AUDIT})
    target = cad.add_dispatch("Robbery")
    (message,) = await posted(bot, discord_api)
    await click(bot, message, f"card:note:1:{target}")
    modal = replies(discord_api)[-1]["data"]
    (text_input,) = modal["components"][0]["components"]
    await dispatch_interaction(bot, modal_submit(modal["custom_id"], {text_input["custom_id"]: "on scene"}))
    assert discord_api.sent("POST", r"/webhooks/")[-1]["content"] == f"Note added to call #{target}."
    await click(bot, message, f"card:close:1:{target}")
    await confirm(bot, discord_api)
    assert cad.operations().count("add_call_note") == 1 and cad.operations().count("close_call") == 1
    assert bot.audit is not None and await bot.audit.flush()
    titles = [e["title"] for body in discord_api.sent("POST", rf"/channels/{AUDIT}/messages$") for e in body["embeds"]]
    assert titles == [f"card Note call #{target}: done", f"card Close call #{target}: done"]


# --- two people at once, and values the bot never offered -------------------------------------------------
OTHER = "555555555555555777"  # a second dispatcher


async def open_note_form(
    bot: DispatchBot, discord_api: FakeDiscord, message: dict[str, Any], call_id: int, user: str
) -> tuple[str, str]:
    """`user` presses Note: the custom_ids of the form they got and of its text input."""
    await click(bot, message, f"card:note:1:{call_id}", user_id=user)
    form = replies(discord_api)[-1]["data"]
    (text_input,) = form["components"][0]["components"]
    return form["custom_id"], text_input["custom_id"]


@pytest.mark.parametrize("together", [False, True], ids=["one after the other", "at the same moment"])
async def test_two_dispatchers_note_the_same_call(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, together: bool
) -> None:
    bot = await make_bot(feeds=DISPATCH)
    target = cad.add_dispatch("Robbery")
    (message,) = await posted(bot, discord_api)
    mine = await open_note_form(bot, discord_api, message, target, USER_ID)
    theirs = await open_note_form(bot, discord_api, message, target, OTHER)
    assert mine[0] != theirs[0]  # each member's form is their own
    first = modal_submit(mine[0], {mine[1]: "first unit on scene"}, user_id=USER_ID)
    second = modal_submit(theirs[0], {theirs[1]: "second unit en route"}, user_id=OTHER)
    if together:
        await dispatch_interaction(bot, first, second)
    else:
        await dispatch_interaction(bot, first)
        await dispatch_interaction(bot, second)
    notes = sorted((n["content"], n["label"]) for n in cad.servers[1].active[target]["notes"])
    assert notes == [("first unit on scene", f"user{USER_ID[-3:]}"), ("second unit en route", f"user{OTHER[-3:]}")]


@pytest.mark.parametrize("value", ["²", "①", "٣", "1" * 19, "", "-5", "12a"])
async def test_a_menu_value_never_offered_is_refused_plainly(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    bot = await make_bot(feeds=CALLS_911)
    [cad.add_911(f"Caller {n}", "Grove St", "x") for n in range(3)]
    (message,) = await posted(bot, discord_api)
    with caplog.at_level(logging.ERROR):
        await dispatch_interaction(bot, select("card:pick:911:1", [value], message["id"], message=message))
    assert last_text(discord_api) == "Choose a call from the list."
    assert not [r for r in caplog.records if r.exc_info]  # an answer, not a traceback


async def test_confirm_checks_the_rights_again(make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord) -> None:
    bot = await make_bot(feeds=CALLS_911, audit={"channel_id": AUDIT})
    call_id = cad.add_911()
    (message,) = await posted(bot, discord_api)
    await click(bot, message, f"card:remove:1:{call_id}")  # a dispatcher asks ...
    await confirm(bot, discord_api, permissions=0)  # ... and has lost the role by the time they confirm
    assert "remove_911" not in cad.operations()
    answer = discord_api.sent("PATCH", r"/messages/@original$")[-1]
    assert "Only dispatchers" in answer["content"] and answer["components"] == []
    assert bot.audit is not None and await bot.audit.flush()
    (audit,) = discord_api.sent("POST", rf"/channels/{AUDIT}/messages$")[-1]["embeds"]
    assert audit["title"] == f"card Remove call #{call_id}: refused"


async def test_a_slash_command_confirm_checks_the_rights_again(
    bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    call_id = cad.add_dispatch("Robbery")
    await dispatch_interaction(bot, slash("close", {"call_id": call_id}, permissions=MANAGE_GUILD))
    await confirm(bot, discord_api, permissions=0)
    assert "close_call" not in cad.operations()
    assert "Only dispatchers" in discord_api.sent("PATCH", r"/messages/@original$")[-1]["content"]


async def test_confirm_checks_the_call_again(make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord) -> None:
    bot = await make_bot(feeds=DISPATCH)
    call_id = cad.add_dispatch("Robbery")
    (message,) = await posted(bot, discord_api)
    await click(bot, message, f"card:close:1:{call_id}")
    cad.close_dispatch(call_id)  # closed in the CAD while the question waits
    await feed_of(bot).poll_once()
    await confirm(bot, discord_api)
    assert "close_call" not in cad.operations()
    assert discord_api.sent("PATCH", r"/messages/@original$")[-1]["content"] == f"Call #{call_id} is no longer active."


async def test_two_pending_confirmations_act_each_on_its_own_call(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    """On discord.py 2.5 a view sent in answer to a component is not tied to its message: with one
    custom_id for every Confirm, the later question took the earlier one's click."""
    bot = await make_bot(feeds=CALLS_911)
    first, second = cad.add_911("Anna"), cad.add_911("Ben")
    await feed_of(bot).poll_once()
    (message,) = discord_api.channel_messages(FEED)
    await dispatch_interaction(bot, select("card:pick:911:1", [str(first)], message["id"], message=message))
    await click(bot, panel_message(discord_api), f"card:remove:1:{first}")
    question_first = discord_api.last_interaction_message()
    await dispatch_interaction(bot, select("card:pick:911:1", [str(second)], message["id"], message=message))
    await click(bot, panel_message(discord_api), f"card:remove:1:{second}")
    assert f"#{first}" in question_first["content"]
    await press(bot, question_first, f"Remove call #{first}")
    assert first not in cad.servers[1].emergency and second in cad.servers[1].emergency
    assert cad.operations().count("remove_911") == 1


async def test_an_oversized_crafted_note_reaches_nothing(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await make_bot(feeds=DISPATCH)
    target = cad.add_dispatch("Robbery")
    (message,) = await posted(bot, discord_api)
    form, text_input = await open_note_form(bot, discord_api, message, target, USER_ID)
    await dispatch_interaction(bot, modal_submit(form, {text_input: "x" * 5000}))
    assert last_text(discord_api) == "The note is over 1000 characters: nothing was sent. Shorten it and try again."
    await dispatch_interaction(bot, slash("note", {"call_id": target, "note": "x" * 5000}, permissions=MANAGE_GUILD))
    await dispatch_interaction(
        bot, slash("911", {"location": "y" * 5000, "description": "fire"}, permissions=MANAGE_GUILD)
    )
    assert "add_call_note" not in cad.operations() and "call_911" not in cad.operations()
