"""The bot subclass: takes its services (session, CAD client, call board, state), builds the
community they serve (`bot.app`) into its registry (`bot.communities`), loads the cogs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
from discord.ext import commands

from .aliases import NO_PINGS
from .callboard import CallBoard
from .community import Communities, Community
from .config import Settings
from .intake.router import Intake
from .logs import silence_voice_warnings
from .preflight import describe_sync_error, ping_role_check
from .services import Services, open_services
from .sonoran import SonoranClient
from .store import Store
from .tree import DispatchTree

if TYPE_CHECKING:
    from .audit import AuditLog
    from .cluster import Membership
    from .feed import FeedEngine
    from .hosting.host import Host, Shared

log = logging.getLogger(__name__)

EXTENSIONS = ("cogs.dispatch", "cogs.feed", "cogs.units", "cogs.lookups")
HOSTED_EXTENSIONS = (*EXTENSIONS, "cogs.setup")
# hosted mode: one HTTP session for every community's CAD requests; room for each of them to have a
# request or two in flight (one community's slow CAD must not queue the others'), and a bound
HOSTED_CONNECTIONS = 512
# A 429 asking to wait longer than this ends the request (discord.RateLimited) instead of sleeping
# through it: the feed's writer retries later, and nothing else waits behind it. 30 s is the
# smallest value discord.py allows.
MAX_RATELIMIT_TIMEOUT = 30.0


class DispatchBot(commands.Bot):
    """`DispatchBot(settings, services)`; `await bot.login(token)` runs `setup_hook`, which needs
    no gateway. Without `services` the bot opens its own from `settings` in `setup_hook` and closes
    them in `close()`.

    `autostart_feed=False` keeps the feed loop from starting by itself (tests call `poll_once()`);
    `sync_on_start=False` skips registering the commands in `discord.guild_ids` at start;
    `serve=False` builds no feed engine at all (no loop, no writers, no push listener bound, no
    websocket): a bot that only declares its commands, as `sync` needs. The cogs start nothing
    either way; what runs is the communities', built (`bot.app`) and started in `setup_hook`,
    and stopped in `close()`. Every interaction finds its community in `communities`.
    """

    def __init__(
        self,
        settings: Settings,
        services: Services | None = None,
        *,
        autostart_feed: bool = True,
        sync_on_start: bool = True,
        serve: bool = True,
        **client_options: Any,  # to discord.py's client: the shards, for `ShardedDispatchBot`
    ) -> None:
        silence_voice_warnings()
        intents = discord.Intents.none()
        intents.guilds = True  # channel and permission cache for `check` and the feed's 403 messages
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=NO_PINGS,
            tree_cls=DispatchTree,
            help_command=None,
            # The bot never reads messages back; discord.py's cache of up to 1000 would only hold
            # the feed's own posts (10 embeds each): ~0.1 MB apiece.
            max_messages=None,
            max_ratelimit_timeout=MAX_RATELIMIT_TIMEOUT,
            **client_options,
        )
        self.settings = settings
        self.autostart_feed = autostart_feed
        self.sync_on_start = sync_on_start
        self.serve = serve
        self._services = services
        self._own_services = contextlib.AsyncExitStack()
        self.communities = Communities()  # filled in setup_hook: the TOML file's one community
        self.host: Host | None = None  # hosted mode: the communities set up with /setup
        self.intake: Intake | None = None  # the push listener, when serving with push.enabled
        self.membership: Membership | None = None  # cluster mode: this process's row
        self._roles_checked = False
        self._started = False

    def __repr__(self) -> str:
        mode = "hosted" if self.hosted else f"cad=v{self.api_version}"
        return f"<DispatchBot user={self.user!s} {mode}>"

    @property
    def hosted(self) -> bool:
        return self.settings.hosting.enabled

    @property
    def api_version(self) -> int:
        """The API the commands are declared for: the file's, or v2 for every hosted community."""
        from .hosting.plan import HOSTED_API_VERSION

        return HOSTED_API_VERSION if self.hosted else self.settings.cad.api_version

    # --- the TOML file's community, for scripts and tests (the bot's own code asks the registry) ---
    @property
    def community(self) -> Community:
        return self.communities.home

    @property
    def services(self) -> Services:
        if self._services is None:
            raise RuntimeError("the bot has not been set up yet (login() runs setup_hook)")
        return self._services

    @property
    def sonoran(self) -> SonoranClient:
        return self.community.sonoran

    @property
    def board(self) -> CallBoard:
        return self.community.board

    @property
    def store(self) -> Store:
        return self.community.store

    @property
    def feed(self) -> FeedEngine | None:
        return self.community.feed if self.communities else None

    @property
    def audit(self) -> AuditLog | None:
        return self.community.audit if self.communities else None

    async def setup_hook(self) -> None:
        # login() runs this hook at every call, and `run` calls login() again after a network
        # failure: what runs is built and started once, or a second community would replace a
        # running one that nothing then stops
        if not self._started:
            self._started = True
            if self.hosted:
                await self._start_hosted()
            else:
                await self._build_and_start()
        if self.sync_on_start:
            for guild_id in self.settings.discord.guild_ids:
                try:
                    await self.sync_commands(guild_id)
                except discord.HTTPException as error:
                    log.error("guild %s: %s", guild_id, describe_sync_error(error, self.application_id))
                except (aiohttp.ClientError, OSError, TimeoutError) as error:
                    log.error("guild %s: cannot reach Discord to register the commands (%s)", guild_id, error)

    async def _build_and_start(self) -> None:
        if self._services is None:
            self._services = await self._own_services.enter_async_context(open_services(self.settings))
        from .app import build_community  # lazily: the rooms it builds import this module's users

        community = build_community(self, self.settings, self._services, serve=self.serve)
        self.communities.everywhere(community)
        if self.serve and self.settings.push.enabled:
            await self._start_intake(hosted=False)
        try:
            await community.start(poll=self.autostart_feed)
        except BaseException:
            # no new events first, then what the community had started (as close() does)
            await self._stop_intake()
            await community.stop()
            raise
        for extension in EXTENSIONS:
            await self.load_extension(extension)

    async def _start_hosted(self) -> None:
        """Hosted mode: the master keys (a missing or wrong one stops the start in one line), the
        registry, one HTTP session, then every community set up so far, then intake."""
        from .hosting.host import Host
        from .hosting.netguard import hosted_connector
        from .hosting.registry import Registry
        from .hosting.secrets import SecretBox, master_keys

        if self.serve:
            box = SecretBox(master_keys(self.settings.hosting))
            registry = await Registry.open_state(self.settings.state, box)
            self._own_services.push_async_callback(registry.close)
            connector = hosted_connector(HOSTED_CONNECTIONS, allow_private=self.settings.hosting.allow_private_api_urls)
            session = await self._own_services.enter_async_context(aiohttp.ClientSession(connector=connector))
            shared = await self._join_cluster() if self.settings.clustered else None
            host = Host(
                self,
                self.settings,
                registry,
                session,
                self.communities,
                serve=True,
                poll=self.autostart_feed,
                shared=shared,
            )
            self._own_services.push_async_callback(host.close)
            self.host = host
            await host.start()
            if self.settings.push.enabled:
                try:
                    await self._start_intake(hosted=True)
                except BaseException:
                    await host.stop()
                    raise
        for extension in HOSTED_EXTENSIONS:
            await self.load_extension(extension)

    async def _join_cluster(self) -> Shared:
        """Cluster mode: the cluster's tables on the state's server, and this process's row in
        `members` (its shards), kept until `close()`."""
        from .cluster import Membership, cluster_schema, open_cluster, process_id
        from .hosting.host import Shared

        url = self.settings.state.postgres_url
        assert url is not None
        schema = cluster_schema(self.settings.state)
        db = await open_cluster(url, schema)
        self._own_services.push_async_callback(db.close)
        leases = await open_cluster(url, schema, pool="sonoran-bot-leases")
        self._own_services.push_async_callback(leases.close)
        lease = self.settings.cluster.lease_seconds
        shards = self.settings.discord
        membership = Membership(
            leases,
            process_id(),
            shard_ids=shards.shard_list(),  # empty: one connection, every guild
            shard_count=shards.shard_count or 1,
            interval=lease / 3,
        )
        await membership.start()
        self._own_services.push_async_callback(membership.stop)
        self.membership = membership
        log.info("cluster: this process is %s (leases of %gs)", membership.id, lease)
        return Shared(db, membership.id, lease, leases)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Cluster mode: every process's shards take turns through PostgreSQL (Discord takes one
        IDENTIFY about every 5 s); else discord.py's own spacing. The database unreachable: its own."""
        shared = self.host.shared if self.host is not None else None
        if shared is None:
            await super().before_identify_hook(shard_id, initial=initial)
            return
        from .cluster.identify import IDENTIFY_SECONDS, identify_turn
        from .cluster.leases import UNREACHABLE

        try:
            wait = (await asyncio.wait_for(identify_turn(shared.leases), IDENTIFY_SECONDS)).wait
        except UNREACHABLE as error:
            log.warning("cluster: cannot book a gateway turn (%s); waiting as one process would", type(error).__name__)
            wait = 0.0 if initial else IDENTIFY_SECONDS
        if wait > 0:
            log.info("shard %s: identifying in %.1fs (the cluster's turn)", shard_id, wait)
            await asyncio.sleep(wait)

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """Removed from a server: its work stops now; its community's credentials and state go
        with its last server."""
        if self.host is None:
            return  # the registry is asked, not what runs: a community that failed to start counts too
        last = await self.host.remove_guild(guild.id)
        log.info("removed from guild %s: its work stopped%s", guild.id, "; its community was deleted" if last else "")

    async def on_ready(self) -> None:
        log.info("connected to Discord as %s in %d guild(s)", self.user, len(self.guilds))
        if not self._roles_checked:  # once: READY comes again after every reconnect
            self._roles_checked = True
            if self.host is not None:
                await self.forget_guilds_left_while_away()
            else:
                self.warn_about_ping_roles()

    async def forget_guilds_left_while_away(self) -> None:
        """Hosted mode, at the first READY: a linked guild Discord no longer lists (the bot was
        removed while it was down) is removed as `on_guild_remove` would have done. Only the guilds
        this process's shards carry: another process's guilds are in no READY of this one."""
        assert self.host is not None
        for guild_id in self.host.linked_guild_ids():
            if self.settings.discord.runs_guild(guild_id) and self.get_guild(guild_id) is None:
                log.info("guild %s no longer has the bot: its work stops", guild_id)
                await self.host.remove_guild(guild_id)

    def warn_about_ping_roles(self) -> None:
        """Says, as `check` does, which feed's or alert's ping role would notify nobody."""
        pings = [("feed", f.channel_id, f.ping_role_id, "feeds[].ping_role_id") for f in self.settings.feeds]
        pings += [("panic alert", a.channel_id, a.ping_role_id, "alerts[].ping_role_id") for a in self.settings.alerts]
        for what, channel_id, role_id, key in pings:
            if role_id:
                check = ping_role_check(self, channel_id, role_id, key)
                if not check.ok:
                    log.warning("%s channel %s: %s: %s -> %s", what, channel_id, check.name, check.detail, check.fix)

    async def sync_commands(self, guild_id: int | None = None) -> int:
        """Registers the slash commands with Discord, in one guild (instant) or globally.
        Raises discord.HTTPException when Discord refuses (`describe_sync_error` says why)."""
        guild = discord.Object(id=guild_id) if guild_id else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        synced = await self.tree.sync(guild=guild)
        log.info("synced %d commands to %s", len(synced), f"guild {guild_id}" if guild_id else "all guilds")
        return len(synced)

    async def _start_intake(self, *, hosted: bool) -> None:
        """The push listener (and the file's SignalR sessions); a failure (PushListenerError: a
        taken port, ...) stops whatever it had started, and is raised."""
        forward = self.host.forward_for if self.host is not None else None
        intake = Intake(self.settings.push, self.communities, hosted=hosted, forward=forward)
        try:
            await intake.start()
        except BaseException:
            await intake.stop()
            raise
        self.intake = intake

    async def _stop_intake(self) -> None:
        if self.intake is not None:
            await self.intake.stop()
            self.intake = None

    async def close(self) -> None:
        try:
            await self._stop_intake()  # no new events first
            # first, while Discord can still be reached: the engines deliver what is stored (the
            # host's own, within their leases in cluster mode)
            if self.host is not None:
                await self.host.stop()
            for community in self.communities:
                await community.stop()
            await super().close()
        finally:
            for community in self.communities:
                await community.stop_audit()
            await self._own_services.aclose()  # only what setup_hook opened itself
