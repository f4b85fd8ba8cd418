"""The feed planner: what a feed channel should store, post and edit, given what it shows and what
the CAD now says. Pure: no I/O, no Discord, no clock of its own.

The poll and the push listener drive the same functions. `plan_snapshot` takes a whole call list
(a poll); `plan_event` takes one push event. Both return a `Plan`: posts whose state or content
changed, and new posts in the order (and groups) they are to be posted. The caller stores the plan,
applies it to the `Book` and delivers.

Cheap when nothing changed: a call whose model equals the one last seen for its post is skipped
before anything is hashed or dumped, and an unchanged snapshot (the client hands back the same
object for the same reply) is skipped whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeAlias, assert_never

from ..posts import ENDED, Call, Post, PostKey, PostKind, PostState, content_version
from ..sonoran.events import (
    DispatchChanged,
    DispatchClosed,
    Event,
    Ignored,
    New911,
    NoteAdded,
    Removed911,
    UnitEvent,
    UnitsMoved,
)
from ..sonoran.models import CallId, CallList, DispatchCall, EmergencyCall, ServerId

RECENT_EVENTS = 2048  # per channel: duplicates arrive within moments, not hours
EARLY_REMOVALS = 1024  # per channel: removals of calls not seen yet, kept for their late EVENT_911


@dataclass(frozen=True)
class FeedRules:
    """What one `[[feeds]]` entry wants posted."""

    channel_id: int
    server_id: ServerId
    emergency: bool  # post emergency 911 calls
    civil: bool  # post civil (non-emergency) 911 calls
    dispatch: bool  # post dispatch calls
    ping: bool  # emergency posts ping the feed's role

    def wants(self, call: Call) -> bool:
        if isinstance(call, EmergencyCall):
            return self.emergency if call.is_emergency else self.civil
        return self.dispatch


@dataclass
class Book:
    """What the bot knows of one feed channel, kept in memory in step with the store:
    `open`: posts that still need work (`Post.is_open`); `known`: every call ever posted there;
    `seen`: the call model each open post was last built from (for the cheap comparison);
    `unanswered`: 911 calls shown "removed" that nobody removed through the bot (a later sign that
    they were answered relabels them); `early_removals`: removals of calls not posted yet."""

    open: dict[PostKey, Post] = field(default_factory=dict)
    known: set[PostKey] = field(default_factory=set)
    seen: dict[PostKey, Call] = field(default_factory=dict)
    unanswered: set[CallId] = field(default_factory=set)
    last_snapshot: CallList | None = None
    recent_events: dict[str, None] = field(default_factory=dict)  # fingerprints, oldest first
    early_removals: dict[CallId, None] = field(default_factory=dict)  # oldest first

    def remember(self, event: Event) -> None:
        """An event taken in: the same one again (a retry, a duplicate delivery) plans nothing."""
        self.recent_events[event_fingerprint(event)] = None
        while len(self.recent_events) > RECENT_EVENTS:
            del self.recent_events[next(iter(self.recent_events))]

    def removed_early(self, call_id: CallId) -> None:
        self.early_removals[call_id] = None
        while len(self.early_removals) > EARLY_REMOVALS:
            del self.early_removals[next(iter(self.early_removals))]

    def apply(self, posts: Iterable[Post], seen: Mapping[PostKey, Call | None] | None = None) -> None:
        """Takes in posts as now stored: open ones are kept, finished ones leave memory."""
        for post in posts:
            self.known.add(post.key)
            if post.kind is PostKind.CALL_911:
                if post.state is PostState.REMOVED and not post.ended_by:
                    self.unanswered.add(post.call_id)
                else:
                    self.unanswered.discard(post.call_id)
            if post.is_open:
                self.open[post.key] = post
            else:
                self.open.pop(post.key, None)
                self.seen.pop(post.key, None)
        for key, call in (seen or {}).items():
            if call is None:
                self.seen.pop(key, None)
            else:
                self.seen[key] = call

    def confirm(self, posts: Iterable[Post]) -> None:
        """What Discord now shows of these posts (their batch, message, shown version, or that the
        message was deleted), merged into the posts as the book holds them now: the planner may
        have moved a post on while its message was being sent."""
        for post in posts:
            current = self.open.get(post.key)
            if current is None:
                continue
            state = PostState.DELETED if post.state is PostState.DELETED else current.state
            self.apply(
                [
                    replace(
                        current,
                        batch=post.batch,
                        position=post.position,
                        message_id=post.message_id,
                        shown=post.shown,
                        state=state,
                    )
                ]
            )


MessageGroup: TypeAlias = tuple[PostKind, bool]  # posts that may share a message: see `message_group`


@dataclass
class Plan:
    updated: list[Post] = field(default_factory=list)  # existing posts, as they now are
    new: dict[MessageGroup, list[Post]] = field(default_factory=dict)  # new posts, by the rule that groups them
    seen: dict[PostKey, Call | None] = field(default_factory=dict)  # for Book.apply
    skipped: list[tuple[PostKey, str]] = field(default_factory=list)  # calls that failed to plan, and why

    def __bool__(self) -> bool:
        return bool(self.updated or self.new)

    @property
    def new_posts(self) -> list[Post]:
        return [post for group in self.new.values() for post in group]


def revivals(book: Book, calls: CallList, rules: FeedRules) -> list[PostKey]:
    """Calls the CAD lists whose posts ended and left memory: the caller loads them from the store
    into `book.open` before planning, so that they come back to life instead of being posted twice."""
    listed: list[PostKey] = [(PostKind.CALL_911, c.call_id) for c in calls.calls_911]
    if rules.dispatch:
        listed.extend((PostKind.DISPATCH, c.call_id) for c in calls.active)
    return [key for key in listed if key in book.known and key not in book.open]


def relabels(book: Book, answered: Collection[CallId]) -> list[PostKey]:
    """911 posts shown "removed", now known to have been answered, whose rows are on disk only: the
    caller loads them into `book.open` before planning, so that they are shown answered."""
    small, large = (answered, book.unanswered) if len(answered) < len(book.unanswered) else (book.unanswered, answered)
    return [
        (PostKind.CALL_911, call_id)
        for call_id in small
        if call_id in large and (PostKind.CALL_911, call_id) not in book.open
    ]


def plan_snapshot(
    book: Book,
    calls: CallList,
    rules: FeedRules,
    *,
    now: float,
    removed_by: Mapping[CallId, str],
    closed_by: Mapping[CallId, str] | None = None,
    answered: Collection[CallId] | None = None,
) -> Plan:
    """A whole call list from a poll: every open post is brought in line with it, and every
    listed call the channel never had is new. `answered`: every 911 call known to have been
    answered, this list's links included (the engine's memory); by default, this list's links."""
    plan = Plan()
    if calls is book.last_snapshot:
        return plan
    calls_911 = {c.call_id: c for c in calls.calls_911}
    active = {c.call_id: c for c in calls.active}
    closed = {c.call_id: c for c in calls.closed}
    if answered is None:
        answered = answered_911(calls)
    for key, post in book.open.items():
        try:
            _plan_listed(plan, book, post, calls_911, active, closed, removed_by, closed_by or {}, answered, now=now)
        except Exception as error:  # one call that cannot be planned costs that call only
            plan.skipped.append((key, repr(error)))
    _relabel(plan, book, removed_by, book.unanswered, answered, now=now)
    fresh_911 = [
        c
        for c in calls.calls_911
        if (PostKind.CALL_911, c.call_id) not in book.known and c.call_id not in book.early_removals
    ]
    fresh_dispatch = [c for c in calls.active if (PostKind.DISPATCH, c.call_id) not in book.known]
    _new(plan, rules, fresh_911, fresh_dispatch, now=now)
    return plan


def _plan_listed(
    plan: Plan,
    book: Book,
    post: Post,
    calls_911: Mapping[CallId, EmergencyCall],
    active: Mapping[CallId, DispatchCall],
    closed: Mapping[CallId, DispatchCall],
    removed_by: Mapping[CallId, str],
    closed_by: Mapping[CallId, str],
    answered: Collection[CallId],
    *,
    now: float,
) -> None:
    kind, call_id = post.key
    listed: Mapping[CallId, Call] = calls_911 if kind is PostKind.CALL_911 else active
    current = listed.get(call_id)
    if post.state is PostState.DELETED or (post.state in ENDED and current is None):
        return  # deleted by a moderator, or ended and still ended (relabelled apart)
    if current is not None and post.state is PostState.ACTIVE and _same(book.seen.get(post.key), current):
        return  # the cheap path: nothing changed
    if current is not None:
        if post.state is PostState.ACTIVE and _older(current, post):
            return  # the list was read before a newer event came in
        _update(plan, post, PostState.ACTIVE, current, now=now)
    elif kind is PostKind.CALL_911:
        _end_911(plan, post, removed_by, answered, now=now)
    else:
        _close(plan, post, closed.get(call_id), closed_by, now=now)


def plan_event(
    book: Book,
    event: Event,
    rules: FeedRules,
    *,
    now: float,
    removed_by: Mapping[CallId, str],
    answered: Collection[CallId],
    closed_by: Mapping[CallId, str] | None = None,
) -> Plan:
    """One push event. Idempotent: the same event twice plans nothing the second time. A call the
    channel had and finished with is never brought back by an event (a late duplicate); the poll
    does that when the CAD really lists it again. An event older (by `updated`) than the call the
    book holds changes nothing; a removal that comes before its call is remembered, so that the late
    EVENT_911 posts nothing. `answered` includes what this event says (a dispatch call's origin)."""
    plan = Plan()
    if event_fingerprint(event) in book.recent_events:
        return plan
    if isinstance(event, New911):
        if event.call.call_id not in book.early_removals:
            _upsert(plan, book, rules, PostKind.CALL_911, event.call, now=now)
    elif isinstance(event, DispatchChanged):
        if rules.dispatch:
            _upsert(plan, book, rules, PostKind.DISPATCH, event.call, now=now)
        origin = event.call.origin_911  # the one link this event can add
        if origin is not None and origin in book.unanswered:
            _relabel(plan, book, removed_by, [origin], answered, now=now)
    elif isinstance(event, Removed911):
        for call_id in event.call_ids:
            post = _open_active(book, PostKind.CALL_911, call_id)
            if post is not None:
                _end_911(plan, post, removed_by, answered, now=now)
            elif (PostKind.CALL_911, call_id) not in book.known:
                book.removed_early(call_id)
    elif isinstance(event, DispatchClosed):
        for call_id in event.call_ids:
            post = _open_active(book, PostKind.DISPATCH, call_id)
            if post is not None:
                _close(plan, post, None, closed_by or {}, now=now)
    elif isinstance(event, NoteAdded):
        post = _open_active(book, PostKind.DISPATCH, event.call_id)
        if post is not None and isinstance(post.call, DispatchCall) and event.note not in post.call.notes:
            _edit_call(plan, post, post.call.model_copy(update={"notes": [*post.call.notes, event.note]}))
    elif isinstance(event, UnitsMoved):
        post = _open_active(book, PostKind.DISPATCH, event.call_id)
        if post is not None and isinstance(post.call, DispatchCall):
            idents = post.call.idents
            if event.attached:
                wanted = [*idents, *(i for i in event.idents if i not in idents)]
            else:
                wanted = [i for i in idents if i not in event.idents]
            if wanted != idents:
                _edit_call(plan, post, post.call.model_copy(update={"idents": wanted}))
    elif isinstance(event, Ignored | UnitEvent):
        pass  # an event type that changes no call feed (units are `bot.units`'s)
    else:
        assert_never(event)  # a new event type without its branch here fails type-checking
    return plan


_fingerprints: dict[int, tuple[Event, str]] = {}  # the last events' fingerprints, by identity


def event_fingerprint(event: Event) -> str:
    """The same for the same event, however delivered. Kept for the last events, which every feed
    of their server asks for in turn (the repr of a call is not cheap)."""
    known = _fingerprints.get(id(event))
    if known is not None and known[0] is event:
        return known[1]
    fingerprint = hashlib.sha1(repr(event).encode()).hexdigest()
    _fingerprints[id(event)] = (event, fingerprint)  # the event is held, so its id is not reused meanwhile
    while len(_fingerprints) > RECENT_EVENTS:
        del _fingerprints[next(iter(_fingerprints))]
    return fingerprint


def answered_911(calls: CallList) -> set[CallId]:
    """911 calls that a dispatch call was made from: taken off the queue by being answered."""
    return {c.origin_911 for c in (*calls.active, *calls.closed) if c.origin_911 is not None}


def unsent_posts(book: Book) -> dict[str, list[Post]]:
    """The posts of each stored batch not yet sent, in message order, the oldest batch first (one
    pass over the book, however many batches). Posts with no batch yet are still being stored."""
    unsent: dict[str, list[Post]] = {}
    for post in book.open.values():
        if post.message_id is None and post.batch:
            unsent.setdefault(post.batch, []).append(post)
    oldest_first = sorted(unsent.items(), key=lambda item: min(p.first_seen for p in item[1]))
    return {batch: sorted(posts, key=lambda p: p.position) for batch, posts in oldest_first}


def stale_batches(book: Book) -> list[str]:
    """Batches whose message shows an old version of one of its calls."""
    return sorted({p.batch for p in book.open.values() if p.message_id is not None and p.version != p.shown})


# --- the steps ------------------------------------------------------------------------------------
def _same(seen: Call | None, current: Call) -> bool:
    return seen is current or (seen is not None and seen == current)


def _open_active(book: Book, kind: PostKind, call_id: CallId) -> Post | None:
    post = book.open.get((kind, call_id))
    return post if post is not None and post.state is PostState.ACTIVE else None


def _upsert(plan: Plan, book: Book, rules: FeedRules, kind: PostKind, call: Call, *, now: float) -> None:
    key = (kind, call.call_id)
    post = book.open.get(key)
    if post is not None:
        if post.state is PostState.ACTIVE and not _same(book.seen.get(key), call) and not _older(call, post):
            _update(plan, post, PostState.ACTIVE, call, now=now)
    elif key not in book.known:
        if isinstance(call, EmergencyCall):
            _new(plan, rules, [call], [], now=now)
        else:
            _new(plan, rules, [], [call], now=now)


def _older(call: Call, post: Post) -> bool:
    """The call, by its `updated`, is older than the one the post was built from (where both say)."""
    new, old = _when(call.updated), _when(post.call.updated)
    return new is not None and old is not None and new < old


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None  # naive and aware times do not compare


def _relabel(
    plan: Plan,
    book: Book,
    removed_by: Mapping[CallId, str],
    candidates: Iterable[CallId],
    answered: Collection[CallId],
    *,
    now: float,
) -> None:
    """Of the `candidates`, 911 posts shown "removed" that are now known to have been answered:
    shown answered."""
    for call_id in sorted(candidates):
        post = book.open.get((PostKind.CALL_911, call_id))
        if post is not None and post.state is PostState.REMOVED and call_id in answered:
            _end_911(plan, post, removed_by, answered, now=now)


def _end_911(
    plan: Plan, post: Post, removed_by: Mapping[CallId, str], answered: Collection[CallId], *, now: float
) -> None:
    who = removed_by.get(post.call_id)
    if who:
        _update(plan, post, PostState.REMOVED, None, now=now, ended_by=who)
    else:
        _update(plan, post, PostState.ANSWERED if post.call_id in answered else PostState.REMOVED, None, now=now)


def _close(plan: Plan, post: Post, call: DispatchCall | None, closed_by: Mapping[CallId, str], *, now: float) -> None:
    who = closed_by.get(post.call_id)
    _update(plan, post, PostState.CLOSED, call, now=now, ended_by=who or None)


def _update(
    plan: Plan,
    post: Post,
    state: PostState,
    call: Call | None,
    *,
    now: float,
    ended_by: str | None = None,
) -> None:
    """The post with the call as `call` shows it (None: as it last was) in `state`, ended by
    `ended_by` (None: by nobody through the bot)."""
    changed = replace(post, state=state, call=call or post.call, ended_by=ended_by)
    version = content_version(state, changed.data)
    plan.seen[post.key] = call
    if version != post.version or state is not post.state:
        ended_at = None if state is PostState.ACTIVE else _ended_at(post, now)
        plan.updated.append(replace(changed, version=version, ended_at=ended_at))


def _ended_at(post: Post, now: float) -> float:
    """When the call ended: kept once known, so that a re-planned or relabelled ended post shows the
    same time."""
    return post.ended_at if post.state in ENDED and post.ended_at else now


def _edit_call(plan: Plan, post: Post, call: Call) -> None:
    changed = replace(post, call=call)
    plan.seen[post.key] = None  # not a call the CAD sent: the next poll compares in full
    plan.updated.append(replace(changed, version=content_version(post.state, changed.data)))


def message_group(post: Post) -> MessageGroup:
    """Posts that may share a message: one kind, with emergency 911 calls in messages of their own,
    so that the role ping comes only with them."""
    emergency = isinstance(post.call, EmergencyCall) and post.call.is_emergency
    return post.kind, emergency


def _new(
    plan: Plan,
    rules: FeedRules,
    calls_911: list[EmergencyCall],
    dispatch: list[DispatchCall],
    *,
    now: float,
) -> None:
    candidates: list[Call] = [
        *(c for c in calls_911 if c.is_emergency),
        *(c for c in calls_911 if not c.is_emergency),
        *dispatch,
    ]
    for call in candidates:
        if not rules.wants(call):
            continue
        kind = PostKind.CALL_911 if isinstance(call, EmergencyCall) else PostKind.DISPATCH
        post = Post(
            channel_id=rules.channel_id,
            server_id=rules.server_id,
            kind=kind,
            call_id=call.call_id,
            batch="",
            position=0,
            message_id=None,
            state=PostState.ACTIVE,
            call=call,
            ended_by=None,
            version="",
            shown=None,
            first_seen=now,
            ended_at=None,
            ping=isinstance(call, EmergencyCall) and call.is_emergency and rules.ping,
        )
        try:
            post = replace(post, version=content_version(PostState.ACTIVE, post.data))
        except Exception as error:  # one call that cannot be dumped costs that call only
            plan.skipped.append(((kind, call.call_id), repr(error)))
            continue
        plan.new.setdefault(message_group(post), []).append(post)
        plan.seen[post.key] = call
