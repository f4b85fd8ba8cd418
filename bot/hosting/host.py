"""`Host`: hosted mode's communities, built from the registry at start, rebuilt when /setup changes
them, and removed with their last guild.

Each tenant (one Sonoran community) gets its own services (CAD client and budget, call board, state
file) on the process's one HTTP session, and one `Community` built by `bot.app.build_community`
from `plan.community_settings`, linked in the bot's `Communities` for each of its guilds and by its
push token. A /setup change is stored first, then the community is rebuilt on the same services
(the budget, the board and the state carry over): the old one is stopped (it delivers what is
stored), the new one takes its guilds and token, then starts.

Cluster mode (`Settings.clustered`: the registry on PostgreSQL, shared by several processes;
`Shared`): every process holds every community, so that any process answers its commands and
its /setup, but only the holder of its lease (`bot.cluster.LeaseKeeper`, keyed by the tenant's id)
runs its engines (polls, writers, boards): the others hold it command-only (`serve=False`). A
lease acquired rebuilds the community with its engines; a lease lost halts them at once, without
draining (no write for it after the lease), and leaves the community command-only. What another process
changed in the registry (/setup there) is seen at each lease tick (`Registry.signatures`, one
query) and rebuilt here; a community deleted there is retired here. Push events taken by a
process that does not own their community wait in `bot.cluster.Inbox` for the owner, which is
told (NOTIFY) and drains them into its engine.

Changes to one tenant are serialized by its lock (two admins at once store one after the other,
neither lost, each checked again under the lock); links and removals, which change which tenants
exist, are serialized process-wide. No event, command or feed ever waits for either lock: they are
/setup's alone, and the feed, the desk and intake take none of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import discord

from ..app import build_community
from ..cluster.budget import forget_budget, shared_limiters
from ..cluster.inbox import Inbox
from ..cluster.leases import UNREACHABLE as UNREACHABLE_DB
from ..cluster.leases import Lease, LeaseKeeper
from ..cluster.members import live_carriers, mark_ready
from ..community import Communities, Community
from ..config import Settings
from ..db import PostgresDatabase
from ..feed.engine import DRAIN_SECONDS
from ..intake.router import deliver_pushed
from ..services import Services, open_services
from ..sonoran.events import BadEnvelope
from ..store import destroy_state
from ..tasks import cancel_and_wait
from .errors import NotSetUp
from .models import CommunityOptions, GuildConfig, LinkedGuild, Tenant
from .plan import community_schema, community_settings, community_state_path, guild_audit_channels, guild_roles
from .registry import Registry

log = logging.getLogger(__name__)

# each community's state file's page cache at most: SQLite's default lets each busy connection grow
# to 2 MiB, 2 GB at 1,000 communities (bench.communities measured 296 KiB with this cap)
STORE_CACHE_KIB = 256
HEALTH_SECONDS = 20.0
DRAIN_MARGIN = 0.5  # cluster mode: a stopping engine's delivery ends this long before its lease may
FIRST_CYCLE_SECONDS = 60.0


@dataclass(frozen=True)
class Shared:
    """Cluster mode: what this process shares with the others (the cluster's schema on PostgreSQL)."""

    db: PostgresDatabase  # the inbox, the budgets
    member_id: str
    lease_seconds: float
    leases: PostgresDatabase  # the same tables on a pool of their own: a renewal never queues


@dataclass
class Hosted:
    """One tenant at work: what it is, its guilds' setups, its services and its community."""

    tenant: Tenant
    guilds: dict[int, GuildConfig]
    services: Services
    stack: contextlib.AsyncExitStack
    community: Community
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Host:
    def __init__(
        self,
        client: discord.Client,
        deployment: Settings,
        registry: Registry,
        session: aiohttp.ClientSession,
        communities: Communities,
        *,
        serve: bool,
        poll: bool,
        clock: Callable[[], float] = time.monotonic,
        shared: Shared | None = None,
    ) -> None:
        self.client = client
        self.deployment = deployment
        self.registry = registry
        self.session = session
        self.communities = communities
        self.serve = serve
        self.poll = poll
        self.clock = clock
        self._hosted: dict[str, Hosted] = {}  # tenant id -> its work
        self._health: asyncio.Task[None] | None = None
        self._membership = asyncio.Lock()  # links and removals, one at a time (see `link`)
        self.shared = shared
        self.keeper: LeaseKeeper | None = None
        self.inbox: Inbox | None = None
        self._owned: set[str] = set()  # cluster mode: tenants whose lease this process holds
        self._signatures: dict[str, bytes] = {}  # cluster mode: the registry's, as last applied here
        self._failed: dict[str, bytes] = {}  # cluster mode: the registry's that could not be applied here
        self._orphans: set[str] = set()  # cluster mode: inbox rows of communities the registry lacks
        self._refresher: asyncio.Task[None] | None = None
        self._drains: dict[str, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._drain_again: set[str] = set()
        self._closing = False

    def __repr__(self) -> str:
        return f"Host({len(self._hosted)} communities)"

    def __len__(self) -> int:
        return len(self._hosted)

    # --- what /setup reads -------------------------------------------------------------------------
    def hosted_for(self, guild_id: int) -> Hosted | None:
        """The tenant this guild is linked to, at work in this process, or None."""
        for hosted in self._hosted.values():
            if guild_id in hosted.guilds:
                return hosted
        return None

    def linked_guild_ids(self) -> list[int]:
        return [guild_id for hosted in self._hosted.values() for guild_id in hosted.guilds]

    def guild_config(self, guild_id: int) -> GuildConfig:
        return self.require(guild_id).guilds[guild_id]

    def require(self, guild_id: int) -> Hosted:
        """The guild's tenant; NotSetUp when it has none."""
        hosted = self.hosted_for(guild_id)
        if hosted is None:
            raise NotSetUp(guild_id)
        return hosted

    # --- start and stop ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Every tenant the registry holds with at least one guild; a tenant left with none (its last
        guild removed while the bot was down) is deleted, credentials and state. In cluster mode,
        the leases first: each community opens with its engines when this process owns it."""
        if self.shared is not None:
            await self._join(self.shared)
        signatures = await self.registry.signatures() if self.shared is not None else {}
        links: dict[str, dict[int, GuildConfig]] = {}
        for linked in await self.registry.guilds():
            links.setdefault(linked.tenant_id, {})[linked.guild_id] = linked.config
        for tenant in await self.registry.tenants():
            guilds = links.get(tenant.id)
            if not guilds:
                await self._delete_tenant(tenant.id)
                continue
            try:
                await self._open(tenant, guilds)
            except Exception:
                # one community that cannot start must not keep the others from starting
                log.exception("community %s could not start", tenant.community_id)
            else:
                if tenant.id in signatures:
                    self._signatures[tenant.id] = signatures[tenant.id]
        log.info("hosted mode: %d communities at work", len(self._hosted))
        if self.keeper is not None and self.shared is not None:
            await mark_ready(self.shared.leases, self.shared.member_id)
            self._refresher = asyncio.create_task(self._watch(self.keeper.tick), name="hosting-cluster-watch")
        if self.deployment.state.health_file is not None and self.poll:
            self._health = asyncio.create_task(self._stamp_health(), name="hosting-health")

    async def _stamp_health(self) -> None:
        """`python -m bot health` reads the deployment's health file: stamped while the process and
        its loop run (each community's CAD state is its own, in its log lines)."""
        path = self.deployment.state.health_file
        assert path is not None
        for _ in range(int(FIRST_CYCLE_SECONDS / 0.2)):  # first, every community's first poll cycle
            if all(h.community.feed is None or h.community.feed.cycles for h in self._hosted.values()):
                break
            await asyncio.sleep(0.2)
        while True:
            try:
                await asyncio.to_thread(_touch, path, f"{time.time():.0f} hosted: {len(self._hosted)} communities")
            except OSError as error:
                log.warning("hosted mode: cannot write state.health_file %s (%s)", path, error)
            await asyncio.sleep(HEALTH_SECONDS)

    async def _open(self, tenant: Tenant, guilds: dict[int, GuildConfig]) -> Hosted:
        """Opens the tenant's services, builds and starts its community, links it. On a failure,
        nothing of it is left linked, running or open (the caller says what failed)."""
        settings = community_settings(self.deployment, tenant, guilds)
        await self._claim(tenant.id, guilds)
        stack = contextlib.AsyncExitStack()
        community: Community | None = None
        try:
            services = await stack.enter_async_context(
                open_services(
                    settings,
                    session=self.session,
                    clock=self.clock,
                    with_store=True,
                    store_cache_kib=STORE_CACHE_KIB,
                    # cluster mode: its Sonoran budget in PostgreSQL, whichever process sends
                    limiter_factory=shared_limiters(self.shared.db, tenant.id) if self.shared is not None else None,
                )
            )
            community = self._build(settings, services, guilds, tenant)
            await community.start(poll=self.poll)
            await self._unless_owned(tenant.id, community)
            hosted = Hosted(tenant, dict(guilds), services, stack, community)
            self._link(hosted, community)
        except BaseException:
            if community is not None:
                self._unlink(community)
                await _stop(community)
            await stack.aclose()
            self._forsake(tenant.id)
            raise
        return hosted

    def _build(
        self, settings: Settings, services: Services, guilds: dict[int, GuildConfig], tenant: Tenant
    ) -> Community:
        community = build_community(
            self.client,
            settings,
            services,
            serve=self.serve and self._serving(tenant.id),
            guild_audit_channels=guild_audit_channels(guilds),
            guild_roles=guild_roles(guilds),
        )
        community.push_token = tenant.push_token.get_secret_value()
        community.shows_presence = False
        return community

    def _link(self, hosted: Hosted, community: Community) -> None:
        """`community` now answers for the tenant: its guilds, its push token."""
        self._hosted[hosted.tenant.id] = hosted
        hosted.community = community
        for guild_id in hosted.guilds:
            self.communities.link(guild_id, community)
        self.communities.link_push_token(hosted.tenant.push_token.get_secret_value(), community)

    def _unlink(self, community: Community) -> None:
        for guild_id in self.communities.guilds_of(community):
            self.communities.unlink(guild_id)
        self.communities.unlink_push_tokens(community)

    async def _rebuild(self, hosted: Hosted) -> None:
        """What `hosted` holds is stored; the community now runs on it (same services: the budget,
        the board and the state carry over). The old engines stop first (a push meanwhile is
        answered 503, to be sent again, and the poll catches up): two engines never plan on one
        store at once."""
        settings = community_settings(self.deployment, hosted.tenant, hosted.guilds)
        board = hosted.services.board
        board.max_age, board.feed_reserve = settings.cad.poll_seconds, settings.feed_polls_per_window
        old = hosted.community
        await _stop(old, self._drain_for(hosted.tenant.id))  # linked until `new` is: a push meanwhile is its 503
        new = self._build(settings, hosted.services, hosted.guilds, hosted.tenant)
        try:
            await new.start(poll=self.poll)
            await self._unless_owned(hosted.tenant.id, new)
        except BaseException:
            await _stop(new)
            self._unlink(old)
            self._hosted.pop(hosted.tenant.id, None)
            await hosted.stack.aclose()
            self._forsake(hosted.tenant.id)
            log.error("community %s could not start again after a change; it is tried again", old.name)
            raise
        self._link(hosted, new)
        self._unlink(old)  # what the new links did not replace (a guild that left)

    async def stop(self) -> None:
        """The engines, while Discord can still be reached (they deliver what is stored; in cluster
        mode for as long as the lease still runs), then the leases, released for another process
        to take at once."""
        self._closing = True
        await cancel_and_wait(self._health)
        await cancel_and_wait(self._refresher)
        self._health = self._refresher = None
        for task in [*self._drains.values(), *self._background]:
            await cancel_and_wait(task)
        if self.keeper is None:
            for hosted in list(self._hosted.values()):
                await hosted.community.stop()
            return
        await asyncio.gather(*(h.community.stop(self._drain_for(t)) for t, h in self._hosted.items()))
        await self.keeper.stop(release=True)
        if self.inbox is not None:
            await self.inbox.close()

    async def close(self) -> None:
        """After the gateway closed: the audit logs' last try, then every tenant's services."""
        for hosted in list(self._hosted.values()):
            await hosted.community.stop_audit()
            await hosted.stack.aclose()
        self._hosted.clear()

    # --- /setup ------------------------------------------------------------------------------------
    async def link(self, guild_id: int, *, community_id: str, api_key: str, api_url: str) -> tuple[Tenant, bool]:
        """Links the guild to the community (created, or its key replaced), and puts it to work.
        The caller has checked the key against the CAD. Returns the tenant and whether it is new.
        Links and removals are made one at a time, process-wide (they are rare; no event, command
        or feed ever waits for them): a community is built once however many guilds ask at once,
        and never removed under a link."""
        async with self._membership:
            before = self.hosted_for(guild_id)
            tenant, created = await self.registry.link(
                guild_id, community_id=community_id, api_key=api_key, api_url=api_url
            )
            if before is not None and before.tenant.id != tenant.id:
                await self._leave(before, guild_id)  # the guild moved to another community
            linked = await self.registry.guild(guild_id)
            config = linked.config if linked is not None else GuildConfig()
            hosted = self._hosted.get(tenant.id)
            if hosted is None:
                guilds = {g.guild_id: g.config for g in await self.registry.guilds() if g.tenant_id == tenant.id}
                await self._open(tenant, {**guilds, guild_id: config})
                return tenant, created
            async with hosted.lock:
                new_key = hosted.tenant.fingerprint != tenant.fingerprint
                hosted.tenant = tenant
                hosted.guilds[guild_id] = config
                if new_key:
                    await self._reopen(hosted)
                else:
                    await self._rebuild(hosted)
        return tenant, created

    async def _reopen(self, hosted: Hosted) -> None:
        """A new API key: new services (a new CAD client and budget), the same state file."""
        self._unlink(hosted.community)
        await _stop(hosted.community, self._drain_for(hosted.tenant.id))
        await hosted.stack.aclose()
        del self._hosted[hosted.tenant.id]
        await self._open(hosted.tenant, hosted.guilds)

    @contextlib.asynccontextmanager
    async def _locked(self, guild_id: int) -> AsyncIterator[Hosted]:
        """The guild's tenant, under its lock: checked again once the lock is held (a removal may
        have come first)."""
        hosted = self.require(guild_id)
        async with hosted.lock:
            if self._hosted.get(hosted.tenant.id) is not hosted or guild_id not in hosted.guilds:
                raise NotSetUp(guild_id)
            if self.shared is not None:
                await self._reread(hosted, guild_id)
            yield hosted

    async def _reread(self, hosted: Hosted, guild_id: int) -> None:
        """Cluster mode: what another process's /setup stored since this one last looked (up to a
        tick ago) is what a change here builds on, not this process's copy."""
        linked = await self.registry.guild(guild_id)
        tenant = await self.registry.tenant(hosted.tenant.id)
        if linked is None or tenant is None or linked.tenant_id != tenant.id:
            raise NotSetUp(guild_id)
        hosted.guilds[guild_id] = linked.config
        hosted.tenant = _with_options(hosted.tenant, tenant.options)

    async def configure(self, guild_id: int, change: Callable[[GuildConfig], GuildConfig]) -> GuildConfig:
        """Applies `change` to the guild's setup: checked as a whole (pydantic's ValidationError if
        the community could not run on it), stored, then the community rebuilt on it."""
        async with self._locked(guild_id) as hosted:
            config = change(hosted.guilds[guild_id])
            community_settings(self.deployment, hosted.tenant, {**hosted.guilds, guild_id: config})
            await self.registry.save_config(guild_id, config)
            hosted.guilds[guild_id] = config
            await self._rebuild(hosted)
        return config

    async def set_options(
        self, guild_id: int, change: Callable[[CommunityOptions], CommunityOptions]
    ) -> CommunityOptions:
        async with self._locked(guild_id) as hosted:
            options = change(hosted.tenant.options)
            await self.registry.save_options(hosted.tenant.id, options)
            hosted.tenant = _with_options(hosted.tenant, options)
            await self._rebuild(hosted)
        return options

    async def rotate_push_token(self, guild_id: int) -> Tenant:
        async with self._locked(guild_id) as hosted:
            tenant = await self.registry.rotate_push_token(hosted.tenant.id)
            self.communities.unlink_push_tokens(hosted.community)  # the old URL stops at once
            hosted.tenant = tenant
            hosted.community.push_token = tenant.push_token.get_secret_value()
            self.communities.link_push_token(hosted.community.push_token, hosted.community)
        return tenant

    async def remove_guild(self, guild_id: int) -> bool:
        """The guild's work stops now (the bot was removed from it, or /setup remove). When it was
        its community's last guild, the credentials and the state are deleted too: True."""
        async with self._membership:
            tenant_id = await self.registry.unlink(guild_id)
            hosted = self.hosted_for(guild_id)
            if hosted is None:
                self.communities.unlink(guild_id)
                if tenant_id is not None and not await self.registry.guild_ids_of(tenant_id):
                    await self._delete_tenant(tenant_id)
                    return True
                return False
            return await self._leave(hosted, guild_id)

    async def _leave(self, hosted: Hosted, guild_id: int) -> bool:
        async with hosted.lock:
            self.communities.unlink(guild_id)
            hosted.guilds.pop(guild_id, None)
            if hosted.guilds:
                await self._rebuild(hosted)
                return False
            await self._retire(hosted)
            await self._delete_tenant(hosted.tenant.id)
        return True

    async def _delete_tenant(self, tenant_id: str) -> None:
        """The credentials first (nothing may use them after this), then the state: its file on
        SQLite, its schema on PostgreSQL (one DROP SCHEMA ... CASCADE)."""
        await self.registry.delete_tenant(tenant_id)
        if self.shared is not None and self.inbox is not None:
            await self.inbox.forget(tenant_id)
            await forget_budget(self.shared.db, tenant_id)
        state = self.deployment.state.model_copy(
            update={
                "path": community_state_path(self.deployment, tenant_id),
                "schema_name": community_schema(tenant_id),
            }
        )
        await destroy_state(state, tenant_id)
        log.info("hosted mode: a community's credentials and state were deleted (its last server left)")

    # --- cluster mode --------------------------------------------------------------------------------
    def _serving(self, tenant_id: str) -> bool:
        """Whether this process runs the tenant's engines: always, unless in cluster mode, where
        only while it holds the tenant's lease."""
        return self.keeper is None or tenant_id in self._owned

    def _carries(self, guilds: Iterable[int]) -> bool:
        """Whether this process's shards carry one of these guilds (their commands come here)."""
        return any(self.deployment.discord.runs_guild(guild_id) for guild_id in guilds)

    async def _claim(self, tenant_id: str, guilds: dict[int, GuildConfig]) -> None:
        """Cluster mode, a community opened here: its lease taken now when this process's shards
        carry one of its guilds and nobody holds it; the others are `_balance`'s to want."""
        keeper = self.keeper
        if keeper is not None and self._carries(guilds) and await keeper.claim(tenant_id):
            self._owned.add(tenant_id)

    async def _balance(self) -> None:
        """Cluster mode, at each tick: a community is wanted by the processes whose shards carry one
        of its guilds, and by the others only while none of those is alive and ready (then within a
        tick of its heartbeat stopping, before its lease can end). One held here that such a
        process carries goes back to it: its engines stop here, and that process takes it at its
        next tick (it has wanted it since it opened it)."""
        keeper, shared = self.keeper, self.shared
        assert keeper is not None and shared is not None
        carriers = [c for c in await live_carriers(shared.leases, 2 * keeper.tick) if c.id != shared.member_id]
        for tenant_id, hosted in list(self._hosted.items()):
            if self._carries(hosted.guilds) or not any(
                carrier.carries(guild_id) for carrier in carriers for guild_id in hosted.guilds
            ):
                keeper.want(tenant_id)
            elif keeper.wants(tenant_id):
                if tenant_id in self._owned:
                    log.info("cluster: community %s goes back to a process whose shards carry it", tenant_id)
                await keeper.drop(tenant_id)

    async def _unless_owned(self, tenant_id: str, community: Community) -> None:
        """The lease went while `community` was being built with engines: they stop at once."""
        if community.feed is not None and not self._serving(tenant_id):
            await community.halt()

    def _drain_for(self, tenant_id: str) -> float | None:
        """How long a stopping engine may still deliver what is stored: the engine's own bound, or
        in cluster mode no longer than the tenant's lease still runs here (0 when it is not held)."""
        if self.keeper is None:
            return None
        return max(0.0, min(DRAIN_SECONDS, self.keeper.remaining(tenant_id) - DRAIN_MARGIN))

    def _forsake(self, tenant_id: str) -> None:
        """Cluster mode: a community that failed to (re)start here gives its lease up (in a task of
        its own: this may run inside the keeper's own `on_acquired`), and the registry's next look
        tries it again (here, or wherever its lease goes)."""
        self._signatures.pop(tenant_id, None)
        self._owned.discard(tenant_id)
        if self.keeper is not None and not self._closing:
            task = asyncio.create_task(self.keeper.drop(tenant_id), name=f"lease given up {tenant_id}")
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _join(self, shared: Shared) -> None:
        """Cluster mode: the leases of every community (taken where free), the inbox's ear, and
        the registry watched for what other processes change."""
        self.inbox = Inbox(shared.db)
        self.keeper = LeaseKeeper(
            shared.leases, shared.member_id, shared.lease_seconds, on_acquired=self._acquired, on_lost=self._lost
        )
        await self.keeper.start()
        self.inbox.listen(self._told)

    async def _acquired(self, tenant_id: str, lease: Lease) -> None:
        """This process now owns the tenant: rebuilt with its engines, then what waits in the inbox."""
        self._owned.add(tenant_id)
        hosted = self._hosted.get(tenant_id)
        if hosted is None:
            return  # removed meanwhile: `_retire` drops the lease
        async with hosted.lock:
            if self._hosted.get(tenant_id) is hosted and hosted.community.feed is None:
                await self._rebuild(hosted)
        log.info("cluster: %s works community %s (fence %d)", lease.owner, hosted.tenant.community_id, lease.fence)
        self._drain_soon(tenant_id)

    async def _lost(self, tenant_id: str) -> None:
        """The lease is gone (or being given up): the engines stop now, nothing drained (another
        process may take the community as soon as the lease ends); it answers commands only."""
        self._owned.discard(tenant_id)
        await cancel_and_wait(self._drains.pop(tenant_id, None))
        hosted = self._hosted.get(tenant_id)
        if hosted is not None:
            # no lock: a /setup rebuild holding it must not delay this; a community it builds
            # meanwhile sees the lease gone (`_unless_owned`)
            await hosted.community.halt()

    async def _retire(self, hosted: Hosted) -> None:
        """The tenant stops here for good (deleted, here or by another process): engines first,
        then its lease, then its services."""
        self._hosted.pop(hosted.tenant.id, None)
        self._signatures.pop(hosted.tenant.id, None)
        self._unlink(hosted.community)
        await _stop(hosted.community, self._drain_for(hosted.tenant.id))
        if self.keeper is not None:
            await self.keeper.drop(hosted.tenant.id)
        await hosted.stack.aclose()

    async def _watch(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            for step in (self._follow_registry, self._balance, self._sweep_inbox):
                try:
                    await step()
                except UNREACHABLE_DB as error:
                    log.warning("cluster: cannot read the shared state (%s); trying again", type(error).__name__)
                except Exception:
                    log.exception("cluster: %s failed; trying again", step.__name__)

    async def _follow_registry(self) -> None:
        """What other processes changed with /setup: new communities opened (command-only, their
        lease wanted), changed ones rebuilt, deleted ones retired."""
        signatures = await self.registry.signatures()
        async with self._membership:
            for tenant_id, hosted in list(self._hosted.items()):
                if tenant_id not in signatures:
                    log.info("cluster: community %s was removed by another process", hosted.tenant.community_id)
                    try:
                        async with hosted.lock:
                            await self._retire(hosted)
                    except Exception:
                        log.exception("community %s could not be stopped cleanly", hosted.tenant.community_id)
            for tenant_id, signature in signatures.items():
                if self._signatures.get(tenant_id) == signature:
                    continue
                try:  # one community that cannot be read or built costs that community only
                    await self._apply(tenant_id)
                except UNREACHABLE_DB:
                    raise
                except Exception as error:
                    if self._failed.get(tenant_id) != signature:  # said once per change, not every tick
                        self._failed[tenant_id] = signature
                        log.error("community %s could not follow a change made elsewhere (%s)", tenant_id, error)
                    continue
                self._failed.pop(tenant_id, None)
                self._signatures[tenant_id] = signature

    async def _apply(self, tenant_id: str) -> None:
        """The tenant as the registry now holds it, opened or rebuilt here (read under its lock,
        so that a /setup change made here meanwhile is not undone)."""
        hosted = self._hosted.get(tenant_id)
        if hosted is None:
            tenant, guilds = await self.registry.tenant(tenant_id), await self.registry.guilds_of(tenant_id)
            if tenant is not None and guilds:  # else being linked or deleted now: the next look settles it
                await self._open(tenant, guilds)
            return
        async with hosted.lock:
            tenant, guilds = await self.registry.tenant(tenant_id), await self.registry.guilds_of(tenant_id)
            if tenant is None or not guilds or self._hosted.get(tenant_id) is not hosted:
                return
            if hosted.tenant == tenant and hosted.guilds == guilds:
                return  # this process made the change itself
            new_key = hosted.tenant.fingerprint != tenant.fingerprint
            hosted.tenant, hosted.guilds = tenant, dict(guilds)
            if new_key:
                await self._reopen(hosted)
            else:
                await self._rebuild(hosted)

    # --- the inbox: push events another process took for a community owned here ---------------------
    def _told(self, tenant_id: str) -> None:
        if tenant_id in self._owned:
            self._drain_soon(tenant_id)

    async def _sweep_inbox(self) -> None:
        """At each tick, in case a notification was missed: one query for what waits. Rows of a
        community the registry does not have two ticks in a row (a push stored while it was being
        deleted) go."""
        assert self.inbox is not None
        unknown = set()
        for tenant_id in await self.inbox.pending():
            if tenant_id in self._signatures or tenant_id in self._hosted:
                self._told(tenant_id)
            elif tenant_id in self._orphans:
                await self.inbox.forget(tenant_id)
            else:
                unknown.add(tenant_id)
        self._orphans = unknown

    def _drain_soon(self, tenant_id: str) -> None:
        self._drain_again.add(tenant_id)
        task = self._drains.get(tenant_id)
        if task is None or task.done():
            self._drains[tenant_id] = asyncio.create_task(self._drain(tenant_id), name=f"inbox {tenant_id}")

    async def _drain(self, tenant_id: str) -> None:
        """The tenant's waiting events, in order, into its engine; each row deleted once stored."""
        assert self.inbox is not None
        try:
            while tenant_id in self._drain_again:
                self._drain_again.discard(tenant_id)
                while rows := await self.inbox.take(tenant_id):
                    hosted = self._hosted.get(tenant_id)
                    feed = hosted.community.feed if hosted is not None else None
                    if feed is None or not self._serving(tenant_id):
                        return
                    for row in rows:
                        try:
                            await deliver_pushed(feed, row.server_id, row.body)
                        except BadEnvelope:
                            log.warning("cluster inbox: a stored push for %s could not be read; dropped", tenant_id)
                        await self.inbox.done([row.id])
        except UNREACHABLE_DB as error:
            log.warning("cluster inbox: cannot drain (%s); trying again at the next tick", type(error).__name__)
        except Exception:
            log.exception("cluster inbox: stored events could not be delivered; trying again at the next tick")
        finally:
            if self._drains.get(tenant_id) is asyncio.current_task():
                del self._drains[tenant_id]

    def forward_for(self, community: Community) -> Callable[[int, bytes], Awaitable[None]] | None:
        """Intake, cluster mode: where a push for `community` goes when this process does not run
        its engines: the inbox, under the tenant's id, for its owner. None outside cluster mode."""
        inbox = self.inbox
        if inbox is None:
            return None
        tenant_id = next((t for t, h in self._hosted.items() if h.community is community), None)
        if tenant_id is None:
            return None

        async def forward(server_id: int, body: bytes) -> None:
            await inbox.put(tenant_id, server_id, body)

        return forward

    async def record(self, guild_id: int, member: discord.abc.User, what: str) -> None:
        await self.registry.record_change(guild_id, member.id, str(member), what)


def _touch(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


async def _stop(community: Community, drain: float | None = None) -> None:
    await community.stop(drain)
    await community.stop_audit()


def _with_options(tenant: Tenant, options: CommunityOptions) -> Tenant:
    return dataclasses.replace(tenant, options=options)


__all__ = ["Host", "Hosted", "LinkedGuild", "NotSetUp"]
