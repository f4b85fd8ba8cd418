"""The feed planner on its own: table-driven, no Discord, no HTTP, no SQLite. Each case gives what
the channel shows (its Book), what the CAD now says (a snapshot or an event), and what the plan
must be: which posts change to which state, and which calls are new, in which groups."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from bot.feed.planner import Book, FeedRules, Plan, plan_event, plan_snapshot, revivals, stale_batches, unsent_posts
from bot.posts import Post, PostKind, PostState, content_version, stored_data
from bot.sonoran import CallList, DispatchCall, EmergencyCall
from bot.sonoran.events import (
    DispatchChanged,
    DispatchClosed,
    Event,
    Ignored,
    New911,
    NoteAdded,
    Removed911,
    UnitsMoved,
)
from bot.sonoran.models import Note

NOW = 1_800_000_000.0
RULES = FeedRules(channel_id=10, server_id=1, emergency=True, civil=True, dispatch=True, ping=True)
E911, DISPATCH = PostKind.CALL_911, PostKind.DISPATCH
ACTIVE, ANSWERED, REMOVED, CLOSED = PostState.ACTIVE, PostState.ANSWERED, PostState.REMOVED, PostState.CLOSED


def call(call_id: int, *, emergency: bool = True, caller: str = "Anna") -> EmergencyCall:
    return EmergencyCall.model_validate(
        {"callId": call_id, "isEmergency": emergency, "caller": caller, "location": "Grove St", "description": "x"}
    )


def dispatch(call_id: int, *, title: str = "Robbery", origin_911: int | None = None, **fields: Any) -> DispatchCall:
    meta = {"origin911": origin_911} if origin_911 is not None else {}
    return DispatchCall.model_validate({"callId": call_id, "title": title, "metaData": meta, **fields})


def post(kind: PostKind, model: EmergencyCall | DispatchCall, state: PostState = ACTIVE, *, shown: bool = True) -> Post:
    version = content_version(state, stored_data(kind, model, None))
    return Post(
        channel_id=10,
        server_id=1,
        kind=kind,
        call_id=model.call_id,
        batch=f"b{model.call_id}",
        position=0,
        message_id=900 + model.call_id,
        state=state,
        call=model,
        ended_by=None,
        version=version,
        shown=version if shown else None,
        first_seen=NOW - 60,
        ended_at=None if state is ACTIVE else NOW - 30,
        ping=False,
    )


def book(*posts: Post, known: tuple[tuple[PostKind, int], ...] = ()) -> Book:
    return Book(open={p.key: p for p in posts if p.is_open}, known={*(p.key for p in posts), *known})


def calls(
    *,
    calls_911: tuple[EmergencyCall, ...] = (),
    active: tuple[DispatchCall, ...] = (),
    closed: tuple[DispatchCall, ...] = (),
) -> CallList:
    return CallList(server_id=1, calls_911=list(calls_911), active=list(active), closed=list(closed))


def states(plan: Plan) -> dict[tuple[PostKind, int], PostState]:
    return {p.key: p.state for p in plan.updated}


def new_groups(plan: Plan) -> list[list[tuple[PostKind, int, bool]]]:
    return [[(p.kind, p.call_id, p.ping) for p in group] for group in plan.new.values()]


@dataclass
class Case:
    name: str
    book: Book
    now: CallList | Event
    changed: dict[tuple[PostKind, int], PostState] = field(default_factory=dict)
    new: list[list[tuple[PostKind, int, bool]]] = field(default_factory=list)
    removed_by: dict[int, str] = field(default_factory=dict)
    rules: FeedRules = RULES


CASES = [
    # --- snapshots (the poll) ---
    Case("nothing changed", book(post(E911, call(1))), calls(calls_911=(call(1),))),
    Case(
        "new calls: emergency, civil and dispatch each in their own group; only emergency pings",
        book(),
        calls(calls_911=(call(1), call(2, emergency=False), call(3)), active=(dispatch(4),)),
        new=[[(E911, 1, True), (E911, 3, True)], [(E911, 2, False)], [(DISPATCH, 4, False)]],
    ),
    Case(
        "the feed's rules: civil only, no dispatch",
        book(),
        calls(calls_911=(call(1), call(2, emergency=False)), active=(dispatch(4),)),
        new=[[(E911, 2, False)]],
        rules=replace(RULES, emergency=False, dispatch=False),
    ),
    Case(
        "a 911 call gone, a dispatch call made from it: answered",
        book(post(E911, call(1))),
        calls(active=(dispatch(9, origin_911=1),)),
        changed={(E911, 1): ANSWERED},
        new=[[(DISPATCH, 9, False)]],
    ),
    Case("a 911 call gone otherwise: removed", book(post(E911, call(1))), calls(), changed={(E911, 1): REMOVED}),
    Case(
        "a 911 call removed through the bot: removed, by whom",
        book(post(E911, call(1))),
        calls(),
        changed={(E911, 1): REMOVED},
        removed_by={1: "Dispatcher Dan"},
    ),
    Case(
        "a dispatch call gone to the closed list: closed",
        book(post(DISPATCH, dispatch(4))),
        calls(closed=(dispatch(4, status=2),)),
        changed={(DISPATCH, 4): CLOSED},
    ),
    Case(
        "a changed call: edited",
        book(post(E911, call(1))),
        calls(calls_911=(call(1, caller="Bob"),)),
        changed={(E911, 1): ACTIVE},
    ),
    Case(
        "an ended post already shown: final, even though the call is still gone",
        book(post(E911, call(1), REMOVED)),
        calls(),
    ),
    Case(
        "an ended post not yet shown stays as it is (the edit is pending, not re-planned)",
        book(post(E911, call(1), REMOVED, shown=False)),
        calls(),
    ),
    Case(
        "a call ever posted is never new again",
        book(known=((E911, 1),)),
        calls(calls_911=(call(5),)),
        new=[[(E911, 5, True)]],
    ),
    # --- events (the push) ---
    Case("EVENT_911 for a call not yet seen", book(), New911(call(7)), new=[[(E911, 7, True)]]),
    Case("EVENT_911 again: nothing", book(post(E911, call(7))), New911(call(7))),
    Case(
        "EVENT_911 with changed text: edited",
        book(post(E911, call(7))),
        New911(call(7, caller="Bob")),
        {(E911, 7): ACTIVE},
    ),
    Case("EVENT_911 for a call that ended: not revived", book(post(E911, call(7), REMOVED)), New911(call(7))),
    Case("EVENT_REMOVE_911", book(post(E911, call(7))), Removed911((7, 8)), {(E911, 7): REMOVED}),
    Case(
        "EVENT_REMOVE_911 of a call removed through the bot",
        book(post(E911, call(7))),
        Removed911((7,)),
        {(E911, 7): REMOVED},
        removed_by={7: "Dan"},
    ),
    Case("EVENT_DISPATCH_NEW", book(), DispatchChanged(dispatch(4)), new=[[(DISPATCH, 4, False)]]),
    Case(
        "EVENT_DISPATCH_NEW on a feed without dispatch",
        book(),
        DispatchChanged(dispatch(4)),
        rules=replace(RULES, dispatch=False),
    ),
    Case(
        "EVENT_DISPATCH_EDIT",
        book(post(DISPATCH, dispatch(4))),
        DispatchChanged(dispatch(4, title="Hostage")),
        {(DISPATCH, 4): ACTIVE},
    ),
    Case("EVENT_DISPATCH_CLOSED", book(post(DISPATCH, dispatch(4))), DispatchClosed((4,)), {(DISPATCH, 4): CLOSED}),
    Case("EVENT_DISPATCH_CLOSED twice", book(post(DISPATCH, dispatch(4), CLOSED)), DispatchClosed((4,))),
    Case(
        "EVENT_DISPATCH_NOTE",
        book(post(DISPATCH, dispatch(4))),
        NoteAdded(4, Note.model_validate({"label": "1-A-12", "content": "fled north"})),
        {(DISPATCH, 4): ACTIVE},
    ),
    Case(
        "EVENT_DISPATCH_NOTE for a call the feed does not show",
        book(),
        NoteAdded(4, Note.model_validate({"content": "x"})),
    ),
    Case(
        "EVENT_DISPATCH_UNIT_ATTACH",
        book(post(DISPATCH, dispatch(4))),
        UnitsMoved(4, (11,), attached=True),
        {(DISPATCH, 4): ACTIVE},
    ),
    Case(
        "EVENT_DISPATCH_UNIT_DETACH of a unit not there",
        book(post(DISPATCH, dispatch(4))),
        UnitsMoved(4, (11,), attached=False),
    ),
    Case("another event type", book(post(E911, call(7))), Ignored("EVENT_UNIT_PANIC")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_plan(case: Case) -> None:
    if isinstance(case.now, CallList):
        plan = plan_snapshot(case.book, case.now, case.rules, now=NOW, removed_by=case.removed_by)
    else:
        plan = plan_event(case.book, case.now, case.rules, now=NOW, removed_by=case.removed_by, answered=set())
    assert states(plan) == case.changed
    assert new_groups(plan) == case.new
    for updated in plan.updated:
        assert updated.version == content_version(updated.state, updated.data)  # what the message must show
        assert (updated.ended_at is None) == (updated.state is ACTIVE)
        if updated.state is REMOVED and updated.call_id in case.removed_by:
            assert updated.data["removed_by"] == case.removed_by[updated.call_id]


def test_the_cheap_path_skips_an_unchanged_snapshot_whole() -> None:
    shown = book(post(E911, call(1)))
    snapshot = calls(calls_911=(call(2),))
    shown.last_snapshot = snapshot
    assert not plan_snapshot(shown, snapshot, RULES, now=NOW, removed_by={})  # the same object: not even looked at
    assert plan_snapshot(shown, calls(calls_911=(call(2),)), RULES, now=NOW, removed_by={})  # an equal new one is


def test_a_planned_post_is_compared_by_model_next_time() -> None:
    current = book(post(E911, call(1)))
    plan = plan_snapshot(current, calls(calls_911=(call(1, caller="Bob"),)), RULES, now=NOW, removed_by={})
    current.apply(plan.updated, plan.seen)
    assert not plan_snapshot(current, calls(calls_911=(call(1, caller="Bob"),)), RULES, now=NOW, removed_by={})


def test_revivals_name_listed_calls_that_ended_and_left_memory() -> None:
    ended = post(E911, call(1), REMOVED)
    assert revivals(book(ended), calls(calls_911=(call(1), call(2))), RULES) == [(E911, 1)]
    revived = Book(open={ended.key: ended}, known={ended.key})
    plan = plan_snapshot(revived, calls(calls_911=(call(1),)), RULES, now=NOW, removed_by={})
    assert states(plan) == {(E911, 1): ACTIVE} and plan.updated[0].ended_at is None


def test_the_same_event_twice_plans_nothing_the_second_time() -> None:
    current = book(post(DISPATCH, dispatch(4)))
    note = NoteAdded(4, Note.model_validate({"label": "A", "content": "once"}))
    first = plan_event(current, note, RULES, now=NOW, removed_by={}, answered=set())
    current.apply(first.updated, first.seen)
    current.remember(note)
    assert first and not plan_event(current, note, RULES, now=NOW, removed_by={}, answered=set())


def test_pending_sends_oldest_first_and_edits_stale_messages() -> None:
    old = replace(post(E911, call(1)), message_id=None, shown=None, batch="old", first_seen=NOW - 100)
    young = replace(post(E911, call(2)), message_id=None, shown=None, batch="young", first_seen=NOW - 10)
    stale = replace(post(E911, call(3)), shown="an older version", batch="stale")
    held = book(young, stale, old)
    assert (list(unsent_posts(held)), stale_batches(held)) == (["old", "young"], ["stale"])
