"""`python -m bot demo`: the real bot against the sandbox CAD, with nothing to set up.

- Without a Discord token, Discord is `TerminalDiscord`: the feed's posts and edits are printed.
- With a token and a channel, the bot runs in that real channel: posts, buttons and slash commands
  (synced to the channel's server), all against the sandbox CAD. No Sonoran plan is needed.

The community's evening is `Timeline`; `--for SECONDS` ends the demo after that long, with exit 0.
The state file lives in a temporary folder and is gone afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import aiohttp
import discord
import discord.http

from ..config import Settings
from ..core import DispatchBot
from ..services import open_services
from .cad import COMMUNITY_ID, FakeCad
from .terminal import TerminalDiscord
from .timeline import Timeline, on_duty

log = logging.getLogger(__name__)

DEMO_CHANNEL = 4242  # the terminal's channel; with a token, the one given
PUSH_PATH = "/sonorancad/event"


def demo_settings(cad_url: str, state: Path, *, token: str, channel_id: int, api_key: str) -> Settings:
    return Settings(
        discord={"token": token},
        sonoran={"community_id": COMMUNITY_ID, "api_key": api_key, "api_url": cad_url, "api_version": 2},
        state={"path": state},
        feeds=[{"server_id": 1, "channel_id": channel_id, "dispatch": True}],
        boards=[{"server_id": 1, "channel_id": channel_id}],
        alerts=[{"server_id": 1, "channel_id": channel_id}],
        push={"enabled": True, "host": "127.0.0.1", "port": 0, "path": PUSH_PATH},
    )


class DiscordUnreachable(Exception):
    """With a token: Discord did not answer the log-in (the network, not the token)."""


class Demo:
    """The sandbox CAD, the bot and the timeline, started together (`async with Demo(...)`)."""

    def __init__(
        self, out: TextIO, *, token: str | None = None, channel_id: int | None = None, pace: float = 1.0
    ) -> None:
        if token and not channel_id:
            raise ValueError("a demo in Discord needs the channel to post in (--channel ID)")
        self.out = out
        self.token = token
        self.channel_id = channel_id or DEMO_CHANNEL
        self.pace = pace
        # this run's own key: no other local process can push events to the demo (and, with a
        # token, through it to a real channel) without reading it from this terminal
        self.api_key = secrets.token_urlsafe(24)
        self.cad = FakeCad(api_key=self.api_key)
        self.terminal: TerminalDiscord | None = None if token else TerminalDiscord(out)
        self.bot: DispatchBot | None = None
        self._stack = contextlib.AsyncExitStack()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Demo:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._stack.aclose()

    async def _start(self) -> None:
        cad_url = await self.cad.start()
        self._stack.push_async_callback(self.cad.close)
        on_duty(self.cad)
        folder = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="dispatch-demo-"))
        if self.terminal is not None:
            base = await self.terminal.start()
            self._stack.push_async_callback(self.terminal.close)
            self._stack.enter_context(_discord_at(base))
        settings = demo_settings(
            cad_url,
            Path(folder) / "demo.sqlite3",
            token=self.token or "demo",
            channel_id=self.channel_id,
            api_key=self.api_key,
        )
        services = await self._stack.enter_async_context(open_services(settings))
        self.bot = DispatchBot(settings, services)
        self._stack.push_async_callback(self.bot.close)
        try:
            await self.bot.login(settings.discord.token.get_secret_value())
        except (aiohttp.ClientError, OSError, TimeoutError, discord.DiscordServerError) as error:
            raise DiscordUnreachable(
                f"cannot reach Discord ({type(error).__name__}): the network, not the token; check this machine's "
                "connection and try again (without a token and --channel, the demo needs no Discord)"
            ) from None
        if self.token:
            self._tasks.append(asyncio.create_task(self._in_discord(self.bot), name="demo-gateway"))
        listener = self.bot.intake.listener if self.bot.intake is not None else None
        assert listener is not None
        push_url = f"http://127.0.0.1:{listener.bound_port}{PUSH_PATH}"
        self._tasks.append(asyncio.create_task(Timeline(self.cad, push_url, self.api_key, pace=self.pace).play()))
        where = "this terminal" if self.terminal else f"channel {self.channel_id}"
        print(sandbox_intro(cad_url, self.api_key, where), file=self.out, flush=True)

    async def _in_discord(self, bot: DispatchBot) -> None:
        """Holds the gateway session, and once ready registers the commands in the channel's server."""

        async def sync_when_ready() -> None:
            await bot.wait_until_ready()
            channel = bot.get_channel(self.channel_id)
            if isinstance(channel, discord.abc.GuildChannel):
                await bot.sync_commands(channel.guild.id)
            else:
                log.warning("demo: channel %s is not visible to the bot; invite it there first", self.channel_id)

        syncer = asyncio.create_task(sync_when_ready())
        try:
            await bot.connect()
        finally:
            syncer.cancel()


def sandbox_config(cad_url: str, api_key: str) -> str:
    """A configuration for `check` and `run` against this run's sandbox, from a second terminal."""
    return f"""[discord]
token = ""                      # your bot's token, or set SONORAN_BOT_DISCORD__TOKEN

[sonoran]
community_id = "{COMMUNITY_ID}"
api_key = "{api_key}"
api_url = "{cad_url}"
api_version = 2

[state]
path = "sandbox-state.sqlite3"

[[feeds]]
channel_id = 0                  # a channel of your server the bot can post in
dispatch = true
"""


def sandbox_intro(cad_url: str, api_key: str, where: str) -> str:
    """What the demo says first: where the sandbox is, this run's key, and a ready configuration."""
    config = "\n".join(f"    {line}" if line else "" for line in sandbox_config(cad_url, api_key).splitlines())
    return (
        f"demo: a sandbox CAD at {cad_url} (API v2, community {COMMUNITY_ID}, this run's key {api_key}); "
        f"the bot posts to {where}. Ctrl-C ends it.\n"
        "demo: to try check, sync and run against the sandbox from a second terminal, save this as sandbox.toml, "
        "fill in the token and the channel, and run `python -m bot --config sandbox.toml check`:\n"
        f"{config}\n"
    )


@contextlib.contextmanager
def _discord_at(base: str) -> Iterator[None]:
    previous = discord.http.Route.BASE
    discord.http.Route.BASE = base
    try:
        yield
    finally:
        discord.http.Route.BASE = previous


async def run_demo(out: TextIO, *, seconds: float | None, token: str | None, channel_id: int | None) -> int:
    """Runs the demo until `seconds` have passed (or forever); 0."""
    async with Demo(out, token=token, channel_id=channel_id) as demo:
        closed = demo.terminal.closed if demo.terminal else asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closed.wait(), seconds)
        if closed.is_set():
            raise BrokenPipeError  # said by the command line, quietly
    print("demo: over", file=out, flush=True)
    return 0
