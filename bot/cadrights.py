"""Rights read from the CAD (API v2): a member is a dispatcher when the CAD account linked to their
Discord id may dispatch (or administer) (`commands.dispatchers_from_cad`); lookups ask for police,
dispatch and supervisor rights (`lookups.allow_cad_rights`, and `isSupervisor` fields).

The account lookup has a budget of 10 a minute per key, so answers are cached, positive and
negative, for `commands.cad_rights_ttl_seconds`; lookups for the same member share one request;
and a lookup never waits for the budget. When the budget is spent or the CAD fails, the answer is
"not from the CAD", and the Discord rules alone decide: the CAD never grants on a failure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from .sonoran import Account, NotLinked, SonoranClient, SonoranError
from .sonoran.singleflight import SingleFlight

log = logging.getLogger(__name__)

# the account permissions that make a supervisor (police, fire, medical, DMV, law records)
SUPERVISOR_PERMISSIONS = ("polSuper", "fireSuper", "medSuper", "dmvSuper", "lawSuper")


@dataclass(frozen=True)
class Rights:
    """What the CAD says a member's linked account may do (all False: not linked, barred, unknown).
    `supervises`: the account's supervisor permissions by name (`polSuper`, `dmvSuper`, ...): each
    opens the supervisor fields of its own records only (bot/lookups/render.py)."""

    dispatch: bool = False
    police: bool = False
    supervises: frozenset[str] = frozenset()

    @property
    def supervisor(self) -> bool:
        """A supervisor of some kind (which may look up, when CAD rights may)."""
        return bool(self.supervises)


NO_RIGHTS = Rights()


def rights_of(account: Account) -> Rights:
    if account.is_barred:
        return NO_RIGHTS
    permissions = account.permissions
    return Rights(
        dispatch=account.can_dispatch,
        police=permissions.get("police") is True,
        supervises=frozenset(name for name in SUPERVISOR_PERMISSIONS if permissions.get(name) is True),
    )


class CadRights:
    def __init__(self, client: SonoranClient, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.ttl = ttl
        self._clock = clock
        self._answers: dict[int, tuple[Rights, float]] = {}  # Discord user id -> (rights, when)
        self._lookups: SingleFlight[Rights] = SingleFlight()
        self.attempts = 0  # lookups tried (the limiter may refuse one before it reaches the CAD)

    def __repr__(self) -> str:
        return f"CadRights(cached={len(self._answers)}, attempts={self.attempts})"

    async def may_dispatch(self, discord_id: int) -> bool:
        """True only when the CAD says so (now, or within the TTL)."""
        return (await self.rights(discord_id)).dispatch

    async def rights(self, discord_id: int) -> Rights:
        """The member's rights as the CAD says (now, or within the TTL); NO_RIGHTS when it cannot say."""
        cached = self._answers.get(discord_id)
        if cached is not None and self._clock() - cached[1] < self.ttl:
            return cached[0]
        try:
            return await self._lookups.run(discord_id, lambda: self._lookup(discord_id), name="cad-rights")
        except SonoranError as error:  # spent budget, CAD down: the Discord rules decide alone
            log.debug("rights from the CAD unavailable for a member: %s", error)
            return NO_RIGHTS

    async def _lookup(self, discord_id: int) -> Rights:
        self.attempts += 1
        try:
            account = await self.client.get_account(discord_id=discord_id, wait=False)
        except NotLinked:
            rights = NO_RIGHTS
        else:
            rights = rights_of(account)
        if len(self._answers) > 10_000:
            self._answers.clear()
        self._answers[discord_id] = (rights, self._clock())
        return rights
