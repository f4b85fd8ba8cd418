"""`Intake`: the process's one push listener (and SignalR sessions), and the road from a pushed
request to the community it is for.

The listener resolves each request's path to a `PushRoute` (its community's key, server, `routes`,
`takes` and `deliver`) before a byte of its body is read; a path that names no community gets the
answer of any wrong path (404). A request is checked against its community's key, its events read,
and handed to that community's feed engine only (`FeedEngine.take_events`, which also hands unit
events to the units engine); the listener answers 200 only once they are stored. The feed engine
only takes events: it opens no port and knows no listener.

- The TOML mode has one community: `push.path` and `push.path/<server_id>` are for it (its key,
  its servers), and with `push.websocket` its SignalR sessions are opened too.
- Hosted mode (`hosted=True`, `[hosting] enabled`): each community's URL is `push.path/<token>`
  and `push.path/<token>/<server_id>` (`push_url`), the token looked up in the registry
  (`Communities.by_push_token`) at each request, so that a community linked, rebuilt or removed
  later is found or not without restarting the listener. A token that matches nothing, a community
  that serves no feed (outside cluster mode) and `push.path` alone are wrong paths. SignalR sessions are not opened in
  hosted mode (`push.websocket` is a TOML-mode option); the listener starts with no community.
- Cluster mode (hosted mode on PostgreSQL, several processes): a community whose engines run in
  another process is checked here all the same (its key, its servers, what it takes), then its
  body, without the key, is stored for the owner (`forward`: `bot.cluster.Inbox`) before the 200;
  the owner hands it to its engine (`deliver_pushed`).

Intake is built and started by the bot (`bot.core`) when it serves and `push.enabled` is on,
before the communities start (a taken port stops the start in one clear line), and stopped before
them (no new events first).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ..feed.engine import takes_event
from ..sonoran import ServerId
from ..sonoran.events import Event, Ignored, events_of, read_envelope, without_key
from .listener import PushListener, PushRoute, Resolve, one_route, server_of
from .websocket import PushSessions

if TYPE_CHECKING:
    from ..community import Communities, Community
    from ..config import PushSettings
    from ..feed.engine import FeedEngine

log = logging.getLogger(__name__)


def route_of(community: Community, feed: FeedEngine) -> PushRoute:
    """A community's route for events sent to its main push URL (its `push.server_id`)."""
    settings = community.settings
    return PushRoute(
        label=community.name,
        api_key=settings.cad.api_key.get_secret_value(),
        server_id=settings.push_server_id,
        routes=lambda server_id: server_id in settings.event_server_ids,
        takes=feed.takes,
        deliver=feed.take_events,
    )


# cluster mode: where a push for a community this process does not run goes (its owner's inbox)
Forwarder = Callable[["Community"], Callable[[ServerId, bytes], Awaitable[None]] | None]


def forward_route(community: Community, forward: Callable[[ServerId, bytes], Awaitable[None]]) -> PushRoute:
    """Cluster mode: a community whose engines run in another process: checked as its own route
    would be, then stored for its owner."""
    settings = community.settings

    async def not_here(server_id: ServerId, events: list[Event]) -> None:
        raise RuntimeError("a forwarded route delivers nothing itself")

    return PushRoute(
        label=community.name,
        api_key=settings.cad.api_key.get_secret_value(),
        server_id=settings.push_server_id,
        routes=lambda server_id: server_id in settings.event_server_ids,
        takes=lambda server_id, event: takes_event(settings, server_id, event),
        deliver=not_here,
        forward=lambda server_id, body: forward(server_id, without_key(body)),
    )


async def deliver_pushed(feed: FeedEngine, server_id: ServerId, body: bytes) -> None:
    """A stored push body (checked against its key when it was taken) into `feed`, as the listener
    would have handed it over. BadEnvelope when it cannot be read."""
    envelope = read_envelope(body)
    events: list[Event] = [e for e in events_of(envelope) if not isinstance(e, Ignored) and feed.takes(server_id, e)]
    if events:
        await feed.take_events(server_id, events)


def hosted_routes(communities: Communities, forward: Forwarder | None = None) -> Resolve:
    """Hosted mode: `<token>` and `<token>/<server_id>` to the community holding the token and
    serving a feed (in cluster mode, one this process does not run goes to `forward`); anything
    else (`push.path` alone included) to None, a wrong path."""

    def resolve(tail: str) -> PushRoute | None:
        token, _, server = tail.partition("/")
        if not token:
            return None
        community = communities.by_push_token(token)  # a sha256 and a dict lookup: cheap per request
        if community is None:
            return None
        if community.feed is not None:
            route = route_of(community, community.feed)
        elif forward is not None and (elsewhere := forward(community)) is not None:
            route = forward_route(community, elsewhere)
        else:
            return None
        if not server:
            return route
        server_id = server_of(server)
        return route.for_server(server_id) if server_id is not None else None

    return resolve


class Intake:
    def __init__(
        self, push: PushSettings, communities: Communities, *, hosted: bool = False, forward: Forwarder | None = None
    ) -> None:
        """`hosted`: the deployment's `hosting.enabled` (routes by token; no SignalR sessions);
        `forward`: cluster mode, see `hosted_routes`."""
        self.push = push
        self.hosted = hosted
        self.forward = forward
        self._communities = communities
        self.listener: PushListener | None = None
        self.sessions: PushSessions | None = None

    def __repr__(self) -> str:
        return (
            f"Intake(hosted={self.hosted}, listening={self.listener is not None}, "
            f"websocket={self.sessions is not None})"
        )

    def _community(self) -> tuple[Community, FeedEngine]:
        """The TOML mode's community: the file's one community (hosted mode resolves per request)."""
        community = self._communities.home
        if community.feed is None:
            raise RuntimeError("push intake needs a community that serves (serve=True)")
        return community, community.feed

    async def start(self) -> None:
        """Binds the listener (PushListenerError: a taken port, ...) and, in the TOML mode, opens
        the SignalR sessions. Hosted mode needs no community yet: the registry may be empty."""
        if self.hosted:
            await self._start_hosted()
            return
        community, feed = self._community()
        settings = community.settings
        route = route_of(community, feed)
        listener = PushListener(
            host=self.push.host,
            port=self.push.port,
            path=self.push.path,
            resolve=one_route(route),
            allow_from=self.push.allow_from,
        )
        sessions = None
        if self.push.websocket:  # checked before binding: a missing extra is one clear line too
            sessions = PushSessions(
                listener,
                route,
                api_url=settings.cad.base_url,
                community_id=settings.cad.community_id,
                api_key=route.api_key,
                server_ids=settings.event_server_ids,
            )
        self.listener, self.sessions = listener, sessions
        await listener.start()  # a taken port stops the start here, with one clear line
        if sessions is not None:
            sessions.start()

    async def _start_hosted(self) -> None:
        # SignalR sessions are the TOML mode's only: a session authenticates one community's key
        # per server and would have to follow every /setup change; hosted communities push by URL
        if self.push.websocket:
            log.warning("push: push.websocket is not used in hosted mode; each community pushes to its own URL")
        listener = PushListener(
            host=self.push.host,
            port=self.push.port,
            path=self.push.path,
            resolve=hosted_routes(self._communities, self.forward),
            allow_from=self.push.allow_from,
        )
        self.listener = listener
        await listener.start()
        log.info("push: hosted mode: each community's URL is %s/<its token>", self.push.path.rstrip("/"))

    async def stop(self) -> None:
        if self.sessions is not None:
            await self.sessions.stop()
        if self.listener is not None:
            await self.listener.stop()
