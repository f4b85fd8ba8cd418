"""A post: one CAD call as shown in one feed channel (one embed of one message), and the words
for its kind and state. The same names are used in the planner, the store and the sender."""

from __future__ import annotations

import enum
import functools
import hashlib
import json
from collections.abc import Mapping, Set
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from .sonoran.models import CallId, DispatchCall, EmergencyCall, ServerId

if TYPE_CHECKING:
    from .community import Community

Call: TypeAlias = EmergencyCall | DispatchCall


class PostKind(enum.StrEnum):
    CALL_911 = "911"  # a 911 call, emergency or civil (the CAD's 911 queue; `CallList.calls_911`)
    DISPATCH = "dispatch"  # a dispatch call (the CAD's incident, `CallList.active`)


class PostState(enum.StrEnum):
    ACTIVE = "active"
    ANSWERED = "answered"  # a 911 call a dispatch call was made from
    REMOVED = "removed"  # a 911 call taken off the queue otherwise
    CLOSED = "closed"  # a dispatch call that was closed
    DELETED = "deleted"  # its message was deleted in Discord: never touched again


ENDED = frozenset({PostState.ANSWERED, PostState.REMOVED, PostState.CLOSED})
PostKey: TypeAlias = tuple[PostKind, CallId]


@dataclass(frozen=True)
class Post:
    channel_id: int
    server_id: ServerId
    kind: PostKind
    call_id: CallId
    batch: str  # the nonce of the message it is (being) posted in
    position: int  # its embed's index in that message
    message_id: int | None  # None until Discord confirmed the message
    state: PostState
    call: Call  # the call as last seen
    ended_by: str | None  # who removed (a 911 call) or closed (a dispatch call) it through the bot
    version: str  # what the message should show (content_version)
    shown: str | None  # what the message does show (None: nothing yet, or unknown)
    first_seen: float
    ended_at: float | None
    ping: bool  # its message pings the feed's role

    @property
    def key(self) -> PostKey:
        return self.kind, self.call_id

    @functools.cached_property
    def data(self) -> dict[str, Any]:
        """The post's content as stored and hashed: {"call": the call, "removed_by"/"closed_by": who}."""
        return stored_data(self.kind, self.call, self.ended_by)

    @property
    def is_open(self) -> bool:
        """Still needs work: the call is active, or its message is unsent or shows an old version."""
        return self.state is PostState.ACTIVE or self.message_id is None or self.shown != self.version


def stored_data(kind: PostKind, call: Call, ended_by: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {"call": call.model_dump(by_alias=True, mode="json")}
    if ended_by:
        data["removed_by" if kind is PostKind.CALL_911 else "closed_by"] = ended_by
    return data


def content_version(state: PostState, data: dict[str, Any]) -> str:
    """What a post shows, as a short hash of its state and `Post.data`: equal versions need no edit."""
    return hashlib.sha1(json.dumps([str(state), data], sort_keys=True).encode()).hexdigest()[:16]


def shown_state(
    open_posts: Mapping[PostKey, Post], known: Set[PostKey], kind: PostKind, call_id: CallId
) -> PostState | None:
    """How a channel shows a call, from its open posts and every call it ever showed; None: never."""
    post = open_posts.get((kind, call_id))
    if post is not None:
        return post.state
    if (kind, call_id) not in known:
        return None
    return PostState.CLOSED if kind is PostKind.DISPATCH else PostState.REMOVED  # ended, and shown so


async def stored_call_state(
    community: Community, channel_id: int, server_id: ServerId, kind: PostKind, call_id: CallId
) -> PostState | None:
    """`FeedEngine.call_state` for a community whose engine runs elsewhere (cluster mode, another
    process owns it): read from the shared state as it stands now, nothing cached."""
    store = community.services.store
    feeds = community.settings.feeds
    if store is None or not any(f.channel_id == channel_id and f.server_id == server_id for f in feeds):
        return None
    open_posts = await store.open_posts(channel_id, server_id)
    return shown_state(open_posts, await store.known_keys(channel_id, server_id), kind, call_id)
