"""`Lookups`: the one road from `/lookup` to the CAD and back.

In order: on at all, the channel, the member's right to look up (a role of `lookups.role_ids`, or on
v2 and when allowed, police, dispatch or supervisor rights on the linked CAD account, read through
the cached rights path, never waiting), the input checked, the community's pause after repeated
400s, the member's cooldown and hourly cap; then the 60 s cache or one request within the lookup
budget; then the answer, only to the member. Every lookup, allowed or refused, is audited with the
query and how many records came back, never the records themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import discord

from ..aliases import NO_PINGS, Interaction
from ..audit import DONE, FAILED, REFUSED, Outcome, audit
from ..cadrights import NO_RIGHTS, Rights
from ..embeds import clean
from ..messages import no_records, user_message
from ..permissions import member_role_ids
from ..sonoran import LookupQuery, LookupRecord, RequestRejected, SonoranError
from ..sonoran.singleflight import SingleFlight
from ..views import Paginator, StaticPages
from .errors import ChannelNotAllowed, LookupRefused, LookupsOff, NotAllowedToLookUp
from .guard import AnswerCache, MemberLimits, Pause
from .query import describe
from .render import lookup_pages

if TYPE_CHECKING:
    from ..community import Community

ACTION = "/lookup"


class Lookups:
    def __init__(self, community: Community) -> None:
        self.community = community
        self.settings = settings = community.settings.lookups
        self.limits = MemberLimits(settings.cooldown_seconds, settings.hourly_cap)
        self.cache = AnswerCache()
        self.pause = Pause()
        self._asking: SingleFlight[list[LookupRecord]] = SingleFlight()  # the same query at once: one request

    def __repr__(self) -> str:
        return f"Lookups(enabled={self.community.settings.lookups.enabled})"

    async def look_up(self, interaction: Interaction, asked: str, build: Callable[[], LookupQuery]) -> None:
        """Answers the member's lookup: `asked` names it for the audit log should `build` (the
        input's checks) refuse it."""
        try:
            by_role = self._check(interaction)
            # the CAD may take a moment to say who the member is; Discord wants an answer in 3 s
            await interaction.response.defer(ephemeral=True, thinking=True)
            rights = await self._rights(interaction.user.id)
            if not by_role and not (rights.police or rights.dispatch or rights.supervisor):
                raise NotAllowedToLookUp()
            query = build()
            self.pause.check()
            self.limits.check(interaction.user.id)
        except LookupRefused as refusal:
            self._audit(interaction, REFUSED, asked, reason=user_message(refusal))
            raise
        self.limits.spend(interaction.user.id)
        try:
            records = await self._records(query, rights)
        except SonoranError as error:
            self.limits.refund(interaction.user.id)  # nothing came back: it does not count
            self._audit(interaction, FAILED, describe(query), reason=user_message(error))
            raise
        self._audit(interaction, DONE, f"{describe(query)} · {len(records)} found")
        await self._answer(interaction, query, records, supervises=rights.supervises)

    def _check(self, interaction: Interaction) -> bool:
        """Refuses what needs no CAD to refuse; True when a role lets the member look up (else only
        CAD rights can)."""
        settings = self.community.settings.lookups
        if not settings.enabled:
            raise LookupsOff()
        if settings.channel_ids and interaction.channel_id not in settings.channel_ids:
            raise ChannelNotAllowed()
        member = interaction.user
        if not isinstance(member, discord.Member):
            raise NotAllowedToLookUp()
        by_role = bool(member_role_ids(member) & set(settings.role_ids))
        if not by_role and not (settings.allow_cad_rights and self.community.services.rights is not None):
            raise NotAllowedToLookUp()
        return by_role

    async def _rights(self, user_id: int) -> Rights:
        """The member's rights in the CAD (v2, when the bot reads them): cached, and never waiting
        for the accounts budget; NO_RIGHTS when unknown, so a failure grants nothing."""
        reader = self.community.services.rights
        return await reader.rights(user_id) if reader is not None else NO_RIGHTS

    async def _records(self, query: LookupQuery, rights: Rights) -> list[LookupRecord]:
        key = (rights, query)  # never shared between members with different rights
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        return await self._asking.run(key, lambda: self._ask(key, query), name="lookup")

    async def _ask(self, key: tuple[Rights, LookupQuery], query: LookupQuery) -> list[LookupRecord]:
        try:
            records = await self.community.sonoran.lookup(query)
        except RequestRejected as error:
            if error.status == 400:
                self.pause.refused(error.detail)
            raise
        self.pause.answered()
        self.cache.put(key, records)
        return records

    async def _answer(
        self, interaction: Interaction, query: LookupQuery, records: list[LookupRecord], *, supervises: frozenset[str]
    ) -> None:
        title = clean(describe(query), 120)
        if not records:
            await interaction.followup.send(no_records(title), ephemeral=True, allowed_mentions=NO_PINGS)
            return
        source = StaticPages(lookup_pages(title, records, supervises=supervises))
        first = await source.page(0)
        if not source.has_page(1):
            await interaction.followup.send(embed=first, ephemeral=True, allowed_mentions=NO_PINGS)
            return
        view = Paginator(source, interaction.user.id)
        view.message = await interaction.followup.send(
            embed=first, view=view, ephemeral=True, allowed_mentions=NO_PINGS, wait=True
        )

    def _audit(self, interaction: Interaction, outcome: Outcome, detail: str, *, reason: str = "") -> None:
        server_id = self.community.settings.cad.server_id
        audit(interaction, ACTION, server_id, None, outcome, reason, detail=detail)
