"""Buttons: page through /calls, confirm /close. Only the member who ran the command may press.

Each view's buttons get custom_ids of their own (`confirm:yes:<token>`): discord.py routes a click by
custom_id, and on some versions (2.5) a view sent in answer to a component is not tied to its
message, so two pending confirmations with one custom_id would share it, and Confirm under
"Remove #1001?" would act on #1002.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import discord

from .aliases import NO_PINGS, Interaction
from .messages import user_message
from .permissions import NotYourButtons
from .tree import log_error, reply_ephemeral, report_error

log = logging.getLogger(__name__)


class PageSource(Protocol):
    def has_page(self, index: int) -> bool: ...

    def page_label(self, index: int) -> str: ...

    async def page(self, index: int) -> discord.Embed: ...


class StaticPages:
    def __init__(self, embeds: list[discord.Embed]) -> None:
        self.embeds = embeds

    def has_page(self, index: int) -> bool:
        return 0 <= index < len(self.embeds)

    def page_label(self, index: int) -> str:
        return f"{index + 1}/{len(self.embeds)}"

    async def page(self, index: int) -> discord.Embed:
        return self.embeds[index]


class OwnedView(discord.ui.View):
    """A view only `owner_id` may use; it disables itself when it times out."""

    def __init__(self, owner_id: int, *, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.owner_id = owner_id
        self.message: discord.InteractionMessage | discord.WebhookMessage | None = None
        token = secrets.token_hex(8)
        for item in self.children:
            if isinstance(item, discord.ui.Button) and item.custom_id:
                item.custom_id = f"{item.custom_id}:{token}"

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await reply_ephemeral(interaction, user_message(NotYourButtons()))
        return False

    async def on_timeout(self) -> None:
        for item in self.children:
            if isinstance(item, discord.ui.Button):
                item.disabled = True
        if self.message is not None:
            # the message may be gone or its token expired: then there is nothing to disable
            with contextlib.suppress(discord.HTTPException):
                await self.message.edit(view=self, allowed_mentions=NO_PINGS)

    async def on_error(
        self, interaction: discord.Interaction[Any], error: Exception, item: discord.ui.Item[Any], /
    ) -> None:
        await report_error(interaction, error, f"button {getattr(item, 'custom_id', '?')}")


class Paginator(OwnedView):
    default_timeout = 180.0  # seconds the buttons work after the last press

    def __init__(self, source: PageSource, owner_id: int, *, timeout: float | None = None) -> None:
        super().__init__(owner_id, timeout=timeout or self.default_timeout)
        self.source = source
        self.index = 0
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        self.previous.disabled = not self.source.has_page(self.index - 1)
        self.next.disabled = not self.source.has_page(self.index + 1)
        self.position.label = self.source.page_label(self.index)

    async def _show(self, interaction: Interaction, index: int) -> None:
        embed = await self.source.page(index)
        self.index = index
        self._sync_buttons()
        await interaction.response.edit_message(embed=embed, view=self, allowed_mentions=NO_PINGS)

    @discord.ui.button(label="◀ Previous", style=discord.ButtonStyle.secondary, custom_id="calls:previous")
    async def previous(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        await self._show(interaction, self.index - 1)

    @discord.ui.button(label="1/1", style=discord.ButtonStyle.secondary, disabled=True, custom_id="calls:position")
    async def position(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        await interaction.response.defer()

    @discord.ui.button(label="Next ▶", style=discord.ButtonStyle.secondary, custom_id="calls:next")
    async def next(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        await self._show(interaction, self.index + 1)


Recheck = Callable[[Interaction], Awaitable[str | None]]


class ConfirmView(OwnedView):
    """Asks once; on Confirm, `recheck` runs first (rights and calls change while the question
    waits: its answer, when not None, is why not), then `action`, which returns the text the
    message then shows."""

    def __init__(
        self,
        owner_id: int,
        action: Callable[[Interaction], Awaitable[str]],
        *,
        confirm_label: str,
        recheck: Recheck,
        timeout: float = 60,
    ) -> None:
        super().__init__(owner_id, timeout=timeout)
        self.action = action
        self.recheck = recheck
        self.confirm.label = confirm_label

    @discord.ui.button(label="Confirm", style=discord.ButtonStyle.danger, custom_id="confirm:yes")
    async def confirm(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        self.stop()
        await interaction.response.defer()  # the CAD may take a few seconds; Discord wants an answer in 3
        try:
            refusal = await self.recheck(interaction)
            text = refusal if refusal is not None else await self.action(interaction)
        except Exception as error:  # shown in place of the question, so the member sees one answer
            log_error(error, f"confirm {self.confirm.label}")
            text = user_message(error)
        await interaction.edit_original_response(content=text, view=None, allowed_mentions=NO_PINGS)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary, custom_id="confirm:no")
    async def cancel(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        self.stop()
        await interaction.response.edit_message(
            content="Cancelled; nothing was changed.", view=None, allowed_mentions=NO_PINGS
        )
