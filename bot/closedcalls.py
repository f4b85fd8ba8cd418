"""Closed calls for `/calls kind:closed`, page by page: the first page from the shared snapshot,
the next ones fetched from the CAD (closedLimit/closedOffset) only when a member asks for them."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import discord

from .aliases import ServerId
from .embeds import KIND_TITLES, call_list_pages
from .sonoran import CallList, DispatchCall

if TYPE_CHECKING:
    from .community import Community

CLOSED_PAGE_SIZE = 10


class ClosedCallPages:
    """Closed calls, one CAD page per embed page: the first from the shared snapshot, later ones
    fetched with closedLimit/closedOffset when a member presses Next."""

    def __init__(self, community: Community, server_id: ServerId, first: CallList, as_of: dt.datetime) -> None:
        self.community = community
        self.server_id = server_id
        self.total = first.closed_total
        self.pages: dict[int, list[DispatchCall]] = {0: first.closed[:CLOSED_PAGE_SIZE]}
        self.as_of = as_of

    def _count(self) -> int | None:
        return None if self.total is None else max(1, -(-self.total // CLOSED_PAGE_SIZE))

    def has_page(self, index: int) -> bool:
        if index < 0:
            return False
        count = self._count()
        if count is not None:
            return index < count
        # v1 does not say how many there are: another page may exist while this one was full
        return index in self.pages or len(self.pages.get(index - 1, [])) == CLOSED_PAGE_SIZE

    def page_label(self, index: int) -> str:
        count = self._count()
        return f"{index + 1}/{count}" if count is not None else f"{index + 1}"

    async def page(self, index: int) -> discord.Embed:
        if index not in self.pages:
            self.pages[index] = await self.community.board.closed_page(
                self.server_id, offset=index * CLOSED_PAGE_SIZE, limit=CLOSED_PAGE_SIZE
            )
            self.as_of = discord.utils.utcnow()
        # at most CLOSED_PAGE_SIZE calls: always exactly one embed
        embed = call_list_pages(
            self.pages[index],
            title=KIND_TITLES["closed"],
            server_id=self.server_id,
            as_of=self.as_of,
            per_page=CLOSED_PAGE_SIZE,
        )[0]
        embed.set_footer(text=f"Page {self.page_label(index)}")
        return embed
