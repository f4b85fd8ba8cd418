"""Dispatcher rights read from the CAD (`commands.dispatchers_from_cad`, API v2): a member is a
dispatcher when the CAD account linked to their Discord id may dispatch (or administer).

The account lookup has a budget of 10 a minute per key, so answers are cached, positive and
negative, for `commands.cad_rights_ttl_seconds`; lookups for the same member share one request;
and a lookup never waits for the budget. When the budget is spent or the CAD fails, the answer is
"not from the CAD", and the Discord rules alone decide: the CAD never grants on a failure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .sonoran import NotLinked, SonoranClient, SonoranError
from .sonoran.singleflight import SingleFlight

log = logging.getLogger(__name__)


class CadRights:
    def __init__(self, client: SonoranClient, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.ttl = ttl
        self._clock = clock
        self._answers: dict[int, tuple[bool, float]] = {}  # Discord user id -> (may dispatch, when)
        self._lookups: SingleFlight[bool] = SingleFlight()
        self.attempts = 0  # lookups tried (the limiter may refuse one before it reaches the CAD)

    def __repr__(self) -> str:
        return f"CadRights(cached={len(self._answers)}, attempts={self.attempts})"

    async def may_dispatch(self, discord_id: int) -> bool:
        """True only when the CAD says so (now, or within the TTL)."""
        cached = self._answers.get(discord_id)
        if cached is not None and self._clock() - cached[1] < self.ttl:
            return cached[0]
        try:
            return await self._lookups.run(discord_id, lambda: self._lookup(discord_id), name="cad-rights")
        except SonoranError as error:  # spent budget, CAD down: the Discord rules decide alone
            log.debug("dispatcher rights from the CAD unavailable for a member: %s", error)
            return False

    async def _lookup(self, discord_id: int) -> bool:
        self.attempts += 1
        try:
            account = await self.client.get_account(discord_id=discord_id, wait=False)
        except NotLinked:
            allowed = False
        else:
            allowed = account.can_dispatch
        if len(self._answers) > 10_000:
            self._answers.clear()
        self._answers[discord_id] = (allowed, self._clock())
        return allowed
