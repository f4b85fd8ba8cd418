"""The bot subclass: owns the Sonoran session, the store and the call board; loads the cogs."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import discord
from discord.ext import commands

from .callboard import CallBoard
from .config import Settings
from .logs import silence_voice_warnings
from .sonoran import SonoranClient
from .store import Store
from .tree import DispatchTree

log = logging.getLogger(__name__)

EXTENSIONS = ("cogs.dispatch", "cogs.feed")


class DispatchBot(commands.Bot):
    """`DispatchBot(settings)`; `await bot.login(token)` runs `setup_hook`, which needs no gateway.

    `sonoran_options` go to the Sonoran client (tests shorten its retry backoff);
    `autostart_feed=False` keeps the feed loop from starting by itself (tests call `poll_once()`).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        session: aiohttp.ClientSession | None = None,
        sonoran_options: dict[str, Any] | None = None,
        autostart_feed: bool = True,
    ) -> None:
        silence_voice_warnings()
        intents = discord.Intents.none()
        intents.guilds = True  # channel and permission cache for `check` and the feed's 403 messages
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=DispatchTree,
            help_command=None,
            # The bot never reads messages back; discord.py's cache of up to 1000 would only hold
            # the feed's own posts (10 embeds each): ~0.1 MB apiece.
            max_messages=None,
        )
        self.settings = settings
        self.autostart_feed = autostart_feed
        self.sync_on_start = True  # copy and sync the commands to discord.guild_ids in setup_hook
        self._given_session = session
        self._session: aiohttp.ClientSession | None = None
        self._sonoran_options = sonoran_options or {}
        self._sonoran: SonoranClient | None = None
        self._store: Store | None = None
        self._board: CallBoard | None = None

    def __repr__(self) -> str:
        return f"<DispatchBot user={self.user!s} cad=v{self.settings.sonoran.api_version}>"

    @property
    def sonoran(self) -> SonoranClient:
        if self._sonoran is None:
            raise RuntimeError("the bot has not been set up yet (login() runs setup_hook)")
        return self._sonoran

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the bot has not been set up yet (login() runs setup_hook)")
        return self._store

    @property
    def board(self) -> CallBoard:
        if self._board is None:
            raise RuntimeError("the bot has not been set up yet (login() runs setup_hook)")
        return self._board

    async def setup_hook(self) -> None:
        self._session = self._given_session or aiohttp.ClientSession()
        self._sonoran = SonoranClient(self._session, self.settings.sonoran, **self._sonoran_options)
        self._sonoran.feed_reserve = self.settings.feed_polls_per_window
        self._board = CallBoard(self._sonoran, max_age=self.settings.sonoran.poll_seconds)
        self._store = await Store.open(self.settings.state.path)
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self.sync_on_start:
            for guild_id in self.settings.discord.guild_ids:
                await self.sync_commands(guild_id)

    async def on_ready(self) -> None:
        log.info("connected to Discord as %s in %d guild(s)", self.user, len(self.guilds))

    async def sync_commands(self, guild_id: int | None = None) -> int:
        """Registers the slash commands with Discord, in one guild (instant) or globally."""
        guild = discord.Object(id=guild_id) if guild_id else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        try:
            synced = await self.tree.sync(guild=guild)
        except discord.HTTPException as exc:
            log.error("could not sync commands to %s: %s", f"guild {guild_id}" if guild_id else "all guilds", exc)
            return 0
        log.info("synced %d commands to %s", len(synced), f"guild {guild_id}" if guild_id else "all guilds")
        return len(synced)

    async def close(self) -> None:
        try:
            await super().close()  # unloads the cogs: the feed loop stops first
        finally:
            if self._store is not None:
                await self._store.close()
                self._store = None
            if self._session is not None and self._given_session is None:
                await self._session.close()
            self._session = None
