"""The unit of the house: a community, and the registry that finds one from a Discord guild.

A `Community` holds everything one Sonoran community works with: its settings (CAD credentials,
feeds, alerts, boards, audit channel, roles), its CAD client and budget, its call board, its state,
its CAD-rights reader, its feed and units engines, its desk, its lookups and its audit log. It is
built in one place, `bot.app.build_community`, and started and stopped as one.

`Communities` maps a Discord guild to its community. Every command, card, form and autocomplete
finds its community through it (`bot.communities.for_interaction(interaction)`), and nothing else:
the bot object is no service locator. In the TOML mode the registry holds one community, built
from the file, which answers for every guild the bot is in (as the bot always has).

This module imports nothing of the rooms it holds (only for typing), so every room may name it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from .aliases import Interaction

if TYPE_CHECKING:
    from .audit import AuditLog
    from .cadrights import CadRights
    from .callboard import CallBoard
    from .config import Settings
    from .desk import Desk
    from .desk.limits import Cooldown
    from .feed import FeedEngine
    from .lookups.service import Lookups
    from .services import Services
    from .sonoran import SonoranClient
    from .store import Store
    from .units.engine import UnitsEngine


class NoCommunity(app_commands.CheckFailure):
    """An interaction from a guild that no community serves (or from outside any guild where the
    bot serves guilds one by one)."""

    def __init__(self, guild_id: int | None) -> None:
        super().__init__()
        self.guild_id = guild_id


class Community:
    """One community's rooms; built by `bot.app.build_community`, which furnishes every attribute
    below before anyone reads it."""

    audit: AuditLog | None  # [audit] channel_id: every guild's (the TOML mode)
    guild_audits: dict[int, AuditLog]  # hosted mode: each linked guild's own audit channel
    # hosted mode: each linked guild's own (dispatcher role ids, caller role ids); role ids belong to
    # one guild, so a guild's roles are never read for another's members
    guild_roles: dict[int, tuple[list[int], list[int]]]
    feed: FeedEngine | None  # None: a community that only answers commands (`sync`, `serve=False`)
    desk: Desk
    lookups: Lookups
    units_cooldown: Cooldown  # /units: each member's wait between two boards drawn

    def __init__(self, client: discord.Client, settings: Settings, services: Services) -> None:
        self.client = client  # the Discord side its rooms deliver to
        self.settings = settings
        self.services = services
        self.name = settings.cad.community_id  # what its log lines say it is (never its key)
        self.push_token: str | None = None  # hosted mode: the path token of its own push URL
        # the bot's presence shows this community's active calls: the TOML mode's one community
        # only (in hosted mode the bot's one status would show one community's calls to all)
        self.shows_presence = True
        self._stopped = False

    def __repr__(self) -> str:
        return f"Community({self.name!r}, cad=v{self.settings.cad.api_version}, feeds={len(self.settings.feeds)})"

    def audit_log(self, guild_id: int | None) -> AuditLog | None:
        """Where a guild's audit records go: its own channel (hosted mode), else the community's."""
        if guild_id is not None and (log := self.guild_audits.get(guild_id)) is not None:
            return log
        return self.audit

    def dispatcher_role_ids(self, guild_id: int | None) -> list[int]:
        if guild_id is not None and guild_id in self.guild_roles:
            return self.guild_roles[guild_id][0]
        return self.settings.commands.dispatcher_role_ids

    def caller_role_ids(self, guild_id: int | None) -> list[int]:
        if guild_id is not None and guild_id in self.guild_roles:
            return self.guild_roles[guild_id][1]
        return self.settings.commands.caller_role_ids

    def _audit_logs(self) -> list[AuditLog]:
        return [*([self.audit] if self.audit is not None else []), *self.guild_audits.values()]

    # --- what the rooms read ---------------------------------------------------------------------
    @property
    def sonoran(self) -> SonoranClient:
        return self.services.sonoran

    @property
    def board(self) -> CallBoard:
        return self.services.board

    @property
    def rights(self) -> CadRights | None:
        return self.services.rights

    @property
    def store(self) -> Store:
        store = self.services.store
        if store is None:
            raise RuntimeError("this bot was built without a state file (it only registers commands)")
        return store

    @property
    def units(self) -> UnitsEngine | None:
        """The boards and panic alerts (driven by the feed engine), or None when nothing is served."""
        return self.feed.units if self.feed is not None else None

    @property
    def main_server(self) -> int:
        return self.settings.cad.server_id

    def server_or_main(self, server: int | None) -> int:
        """A command's `server` option, or the community's main CAD server."""
        return server or self.settings.cad.server_id

    # --- start and stop --------------------------------------------------------------------------
    async def start(self, *, poll: bool) -> None:
        """Starts the audit log, then the feed engine (its writers, the units engine, and with
        `poll` the poll loop). A failure is raised; the caller stops intake first, then
        `stop()` stops what had started."""
        for log in self._audit_logs():
            log.start()
        if self.feed is not None:
            await self.feed.start(poll=poll)

    async def stop(self, drain: float | None = None) -> None:
        """The feed first, while Discord can still be reached: it delivers what is stored (for
        `drain` seconds at most; by default the engine's own bound). Once."""
        if self.feed is not None and not self._stopped:
            self._stopped = True
            await (self.feed.stop() if drain is None else self.feed.stop(drain))

    async def halt(self) -> None:
        """Cluster mode, its lease gone: the engines stop now, nothing more delivered (a stop that
        is still delivering is cut short), and from then on the community answers commands only."""
        feed, self.feed = self.feed, None
        if feed is not None:
            self._stopped = True
            await feed.halt()

    async def stop_audit(self) -> None:
        """After the gateway closed: what the audit log still holds is tried once more."""
        for log in self._audit_logs():
            await log.stop()


class Communities:
    """Discord guild -> community. `everywhere(community)` is the TOML mode: one community that
    answers for every guild."""

    def __init__(self) -> None:
        self._by_guild: dict[int, Community] = {}
        self._everywhere: Community | None = None
        self._by_token: dict[bytes, Community] = {}  # hosted mode: sha256(push token) -> community

    def __repr__(self) -> str:
        return f"Communities({len(self)}, everywhere={self._everywhere is not None})"

    def everywhere(self, community: Community) -> None:
        self._everywhere = community

    def link(self, guild_id: int, community: Community) -> None:
        self._by_guild[guild_id] = community

    def unlink(self, guild_id: int) -> Community | None:
        return self._by_guild.pop(guild_id, None)

    def guilds_of(self, community: Community) -> list[int]:
        return [guild_id for guild_id, linked in self._by_guild.items() if linked is community]

    def link_push_token(self, token: str, community: Community) -> None:
        self._by_token[push_digest(token)] = community

    def unlink_push_tokens(self, community: Community) -> None:
        for digest, linked in list(self._by_token.items()):
            if linked is community:
                del self._by_token[digest]

    def by_push_token(self, token: str) -> Community | None:
        """The community whose push URL ends in `token` (looked up by its hash, so the lookup's
        time says nothing of how much of a guessed token was right)."""
        return self._by_token.get(push_digest(token))

    def __iter__(self) -> Iterator[Community]:
        """Every community once."""
        seen: dict[int, Community] = {}
        for community in [*([self._everywhere] if self._everywhere else []), *self._by_guild.values()]:
            seen.setdefault(id(community), community)
        return iter(seen.values())

    def __len__(self) -> int:
        return sum(1 for _ in self)

    @property
    def home(self) -> Community:
        """The TOML file's community (scripts, tests and the compatibility attributes read it)."""
        if self._everywhere is None:
            raise RuntimeError("the bot has not been set up yet (login() runs setup_hook)")
        return self._everywhere

    def find(self, guild_id: int | None) -> Community | None:
        if guild_id is not None and (community := self._by_guild.get(guild_id)) is not None:
            return community
        return self._everywhere

    def for_guild(self, guild_id: int | None) -> Community:
        community = self.find(guild_id)
        if community is None:
            raise NoCommunity(guild_id)
        return community

    def for_interaction(self, interaction: discord.Interaction[Any]) -> Community:
        """The community this interaction belongs to, from its guild; `NoCommunity` if none."""
        return self.for_guild(interaction.guild_id)


def push_digest(token: str) -> bytes:
    """What a push token is known by: in the registry's memory here, and in the hosted registry."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def community_of(interaction: Interaction) -> Community | None:
    """The interaction's community, or None (never raises): for the audit record and the error
    handler, which must work whatever the bot knows."""
    return interaction.client.communities.find(interaction.guild_id)
