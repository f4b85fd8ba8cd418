"""`Intake`: the process's one push listener (and SignalR sessions), and the road from a pushed
request to the community it is for.

A request is checked against its community's key, its events read, and handed to that
community's feed engine (`FeedEngine.take_events`, which also hands unit events to the units
engine); the listener answers 200 only once they are stored. The feed engine only takes events:
it opens no port and knows no listener.

The TOML mode has one community: every request is for it (its key, its servers). Intake is built
and started by the bot (`bot.core`) when it serves and `push.enabled` is on, before the
communities start (a taken port stops the start in one clear line), and stopped before them (no
new events first).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .listener import PushListener
from .websocket import PushSessions

if TYPE_CHECKING:
    from ..community import Communities, Community
    from ..config import PushSettings
    from ..feed.engine import FeedEngine

log = logging.getLogger(__name__)


class Intake:
    def __init__(self, push: PushSettings, communities: Communities) -> None:
        self.push = push
        self._communities = communities
        self.listener: PushListener | None = None
        self.sessions: PushSessions | None = None

    def __repr__(self) -> str:
        return f"Intake(listening={self.listener is not None}, websocket={self.sessions is not None})"

    def _community(self) -> tuple[Community, FeedEngine]:
        """The community a request is for: in the TOML mode, the file's one community."""
        community = self._communities.home
        if community.feed is None:
            raise RuntimeError("push intake needs a community that serves (serve=True)")
        return community, community.feed

    async def start(self) -> None:
        """Binds the listener (PushListenerError: a taken port, ...) and opens the SignalR sessions."""
        community, feed = self._community()
        settings = community.settings
        api_key = settings.cad.api_key.get_secret_value()
        listener = PushListener(
            host=self.push.host,
            port=self.push.port,
            path=self.push.path,
            default_server_id=settings.push_server_id,
            api_key=api_key,
            routes=lambda server_id: server_id in settings.event_server_ids,
            takes=feed.takes,
            deliver=feed.take_events,
            allow_from=self.push.allow_from,
        )
        sessions = None
        if self.push.websocket:  # checked before binding: a missing extra is one clear line too
            sessions = PushSessions(
                listener,
                api_url=settings.cad.base_url,
                community_id=settings.cad.community_id,
                api_key=api_key,
                server_ids=settings.event_server_ids,
            )
        self.listener, self.sessions = listener, sessions
        await listener.start()  # a taken port stops the start here, with one clear line
        if sessions is not None:
            sessions.start()

    async def stop(self) -> None:
        if self.sessions is not None:
            await self.sessions.stop()
        if self.listener is not None:
            await self.listener.stop()
