"""`Channels`: one community's channels in Discord, as its rooms write to them.

One writer per channel (`writer()`), whatever the channel shows: the feed's call posts, panic
alerts and unit boards are lanes of the same writer. A failed write becomes a `Fault` here, in the
one wording of `faults`, and a channel's change of state (failing, working again) is logged once.
"""

from __future__ import annotations

import logging

import aiohttp
import discord

from ..statechanges import StateChanges
from .faults import describe_channel_fault
from .outbox import ChannelWriter
from .writes import Fault

log = logging.getLogger("bot.feed")  # the feed's log, as operators have always read these lines in


class Channels:
    def __init__(self, client: discord.Client) -> None:
        self.client = client
        self._writers: dict[int, ChannelWriter] = {}
        self._state = StateChanges()

    def __repr__(self) -> str:
        return f"Channels(writers={len(self._writers)})"

    def writer(self, channel_id: int) -> ChannelWriter:
        """The channel's one writer (started), for every kind of message it shows."""
        writer = self._writers.get(channel_id)
        if writer is None:
            writer = self._writers[channel_id] = ChannelWriter(channel_id)
            writer.start()
        return writer

    def channel(self, channel_id: int) -> discord.PartialMessageable:
        return self.client.get_partial_messageable(channel_id)

    def message(self, channel_id: int, message_id: int) -> discord.PartialMessage:
        return self.channel(channel_id).get_partial_message(message_id)

    def wake_all(self, *, retry: bool = False) -> None:
        for writer in self._writers.values():
            writer.wake(retry=retry)

    async def settled(self) -> None:
        """Returns once every channel has tried everything due (sent it, or failed and waits)."""
        for writer in list(self._writers.values()):
            await writer.settled()

    async def stop(self) -> None:
        for writer in self._writers.values():
            await writer.stop()

    def fault(self, channel_id: int, error: BaseException, action: str) -> Fault:
        """What a failed write to this channel means for its writer (logged once per change)."""
        text = describe_channel_fault(self.client, channel_id, error, action)
        self.changed(channel_id, text)
        if isinstance(error, discord.RateLimited):
            return Fault(text, wide=True, retry_after=error.retry_after)
        if isinstance(error, TimeoutError) or (isinstance(error, discord.HTTPException) and error.status >= 500):
            return Fault(text, wide=False)  # this message's write; the channel's others may go through
        wide = isinstance(error, (discord.Forbidden, aiohttp.ClientError, OSError)) or (
            isinstance(error, discord.NotFound) and action == "post"
        )
        return Fault(text, wide=wide)

    def changed(self, channel_id: int, state: str) -> None:
        """The channel's state after a write: "ok", or the fault's wording."""
        if self._state.change(channel_id, state) is None:
            return
        if state == "ok":
            log.info("feed: channel %s works again; held calls are posted", channel_id)
        else:
            log.warning("feed: channel %s: %s; calls are kept and posted once it works", channel_id, state)
