"""What the bot works with, built before it and handed in (discord.py's `advanced_startup.py`):
the HTTP session, the Sonoran client, the call board and the state (a SQLite file, or a schema on
PostgreSQL: `state.url`).

`open_services(settings)` builds them from the configuration and closes them when its block ends.
The Sonoran client itself takes plain values; `sonoran_client` is where the settings meet it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp

from .cadrights import CadRights
from .callboard import CallBoard
from .config import Settings, SonoranSettings
from .sonoran import SonoranClient
from .sonoran.ratelimit import LimiterFactory
from .store import Store


@dataclass(frozen=True)
class Services:
    session: aiohttp.ClientSession
    sonoran: SonoranClient
    board: CallBoard
    store: Store | None  # None: a bot that only registers its commands (`sync`) and opens no state file
    rights: CadRights | None = None  # commands.dispatchers_from_cad or lookups.allow_cad_rights (v2)
    clock: Callable[[], float] = time.monotonic  # what the budgets and per-minute caps go by


def sonoran_client(
    session: aiohttp.ClientSession,
    settings: SonoranSettings,
    *,
    retry_backoff: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    limiter_factory: LimiterFactory | None = None,
) -> SonoranClient:
    return SonoranClient(
        session,
        base_url=settings.base_url,
        api_key=settings.api_key.get_secret_value(),
        api_version=settings.api_version,
        community_id=settings.community_id,
        server_id=settings.server_id,
        timeout=settings.timeout_seconds,
        rate_limits=settings.rate_limits.model_dump(),
        retry_backoff=retry_backoff,
        clock=clock,
        limiter_factory=limiter_factory,
    )


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    session: aiohttp.ClientSession | None = None,
    with_store: bool = True,
    retry_backoff: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    store_cache_kib: int | None = None,
    limiter_factory: LimiterFactory | None = None,
) -> AsyncIterator[Services]:
    """Everything the bot needs, closed again (the session only if opened here) on the way out.
    `clock`: the time the rate limits and the call board's freshness go by (for simulations).
    `store_cache_kib`: the state file's page cache at most (`Store.open`; hosted mode, where one
    process holds many communities' files).
    `limiter_factory`: the Sonoran budgets (`HttpCore`): by default this process's own; a cluster
    passes `bot.cluster.budget.shared_limiters(db, tenant_id)`, one budget for all its processes."""
    async with contextlib.AsyncExitStack() as stack:
        if session is None:
            session = await stack.enter_async_context(aiohttp.ClientSession())
        sonoran = sonoran_client(
            session, settings.cad, retry_backoff=retry_backoff, clock=clock, limiter_factory=limiter_factory
        )
        board = CallBoard(
            sonoran, max_age=settings.cad.poll_seconds, feed_reserve=settings.feed_polls_per_window, clock=clock
        )
        store = None
        if with_store:
            store = await Store.open_state(settings.state, settings.cad.community_id, cache_kib=store_cache_kib)
            stack.push_async_callback(store.close)
        rights = None
        if (
            settings.commands.dispatchers_from_cad or settings.lookups.allow_cad_rights
        ) and settings.cad.api_version == 2:
            rights = CadRights(sonoran, settings.commands.cad_rights_ttl_seconds, clock=clock)
        yield Services(session, sonoran, board, store, rights, clock)
