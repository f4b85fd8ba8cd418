"""Feed posts as a dispatch desk: the components on each feed message, and what a click does.

A message about one active call carries that call's buttons: **Remove** for a 911 call, **Note**
and **Close** for a dispatch call. A message about several carries a select menu of its active
calls; choosing one opens an ephemeral panel with that call's buttons. So any call is at most two
clicks away. A message whose calls have all ended carries nothing.

The components are persistent without any view kept in memory: each is a discord.py `DynamicItem`
whose `custom_id` holds the action, the CAD server and the call (`card:close:1:77`), registered
when the Dispatch cog loads, so a click on a post from before a restart still works. Every click
and every modal submit is checked like the matching slash command (a crafted interaction can
press a button the member never saw), and a call that ended meanwhile is never acted on.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from typing import Any

import discord

from .aliases import NO_PINGS, Interaction
from .audit import audit_refusal
from .embeds import call_label, truncate
from .messages import (
    NOTE_LIMIT,
    NotAChoice,
    no_longer_active,
    not_shown_here,
    text_problem,
    user_message,
    what_to_do,
)
from .permissions import NotDispatcher, may_dispatch
from .posts import Post, PostKind, PostState, stored_call_state
from .sonoran.models import CallId, ServerId
from .tree import reply_ephemeral, report_error

LABELS = {"remove": "Remove", "note": "Note", "close": "Close", "attach": "Attach me", "detach": "Detach me"}
ATTACH_ACTIONS = ("attach", "detach")  # API v2 only: the CAD targets the member by Discord id
KIND_OF_ACTION = {
    "remove": PostKind.CALL_911,
    "note": PostKind.DISPATCH,
    "close": PostKind.DISPATCH,
    "attach": PostKind.DISPATCH,
    "detach": PostKind.DISPATCH,
}


def actions_for(kind: PostKind, *, attach: bool) -> tuple[str, ...]:
    if kind is PostKind.CALL_911:
        return ("remove",)
    return ("note", "close", *(ATTACH_ACTIONS if attach else ()))


# --- the components of a feed message --------------------------------------------------------------
def card_view(posts: Sequence[Post], *, attach: bool = False) -> discord.ui.View | None:
    """The components for a message showing `posts` (one kind, one server); None when no call in it
    is active any more (an edit with None removes them). `attach`: offer Attach me / Detach me (v2)."""
    active = [post for post in posts if post.state is PostState.ACTIVE and has_card(post)]
    if not active:
        return None
    view = discord.ui.View(timeout=None)
    if len(active) == 1:
        (post,) = active
        for action in actions_for(post.kind, attach=attach):
            view.add_item(CardButton(action, post.server_id, post.call_id))
    else:
        first = active[0]
        options = [
            discord.SelectOption(label=truncate(call_label(post.call), 100), value=str(post.call_id)) for post in active
        ]
        view.add_item(CardPicker(first.kind, first.server_id, options))
    view.stop()  # clicks are routed by the dynamic items: nothing is kept in memory per message
    return view


def has_card(post: Post) -> bool:
    """Whether the post's server and call fit a custom_id's digits. The CAD's ids are read as
    0 <= id < 2^63 (`bot.sonoran.numbers`); a call whose id does not fit here (or a row stored by a
    version that read negative ids) is shown without buttons rather than make Discord refuse the
    whole message, and with it every later delivery to that channel."""
    return 0 <= post.server_id < 10**10 and 0 <= post.call_id < 10**18


def panel_view(kind: PostKind, server_id: ServerId, call_id: CallId, *, attach: bool) -> discord.ui.View:
    """The buttons of one call, for the ephemeral panel a select menu opens."""
    view = discord.ui.View(timeout=None)
    for action in actions_for(kind, attach=attach):
        view.add_item(CardButton(action, server_id, call_id))
    view.stop()
    return view


# --- the persistent items ------------------------------------------------------------------------------
class CardButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"card:(?P<action>remove|note|close|attach|detach):(?P<server>[0-9]{1,10}):(?P<call>[0-9]{1,18})",
):
    def __init__(self, action: str, server_id: ServerId, call_id: CallId) -> None:
        style = discord.ButtonStyle.danger if action in ("remove", "close") else discord.ButtonStyle.secondary
        super().__init__(
            discord.ui.Button(label=LABELS[action], style=style, custom_id=f"card:{action}:{server_id}:{call_id}")
        )
        self.action = action
        self.server_id = server_id
        self.call_id = call_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> CardButton:
        return cls(match["action"], int(match["server"]), int(match["call"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await act(interaction, self.action, self.server_id, self.call_id)
        except Exception as error:  # the same readable, ephemeral answer as a slash command's
            await report_error(interaction, error, f"card {self.action}")


class CardPicker(
    discord.ui.DynamicItem[discord.ui.Select[Any]],
    template=r"card:pick:(?P<kind>911|dispatch):(?P<server>[0-9]{1,10})",
):
    def __init__(self, kind: PostKind, server_id: ServerId, options: list[discord.SelectOption] | None = None) -> None:
        super().__init__(
            discord.ui.Select(
                custom_id=f"card:pick:{kind}:{server_id}",
                placeholder="Act on one of these calls…",
                options=options or [discord.SelectOption(label="call", value="0")],
            )
        )
        self.kind = kind
        self.server_id = server_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> CardPicker:
        return cls(PostKind(match["kind"]), int(match["server"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        values = self.item.values  # discord.py fills them in from the interaction
        call_id = offered_call_id(values[0] if values else "")
        if call_id is None:  # never a value the bot offers: a crafted interaction
            await reply_ephemeral(interaction, user_message(NotAChoice()))
            return
        try:
            pick = f"card {self.kind} call"
            if not await _may_act(interaction, pick, self.kind, self.server_id, call_id, needs_dispatcher=False):
                return
            await interaction.response.send_message(
                what_to_do(call_id),
                view=panel_view(self.kind, self.server_id, call_id, attach=_attach_on(interaction)),
                ephemeral=True,
                allowed_mentions=NO_PINGS,
            )
        except Exception as error:
            await report_error(interaction, error, "card select")


def offered_call_id(value: str) -> CallId | None:
    """A menu value as the bot offers it (ASCII digits, a call id's length), else None: "²" and "①"
    are digits to `str.isdigit` and not to `int`."""
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else None


class NoteModal(discord.ui.Modal):
    """One form per member and per click: discord.py keeps open forms by custom_id, so a shared one
    would let a second dispatcher's form replace the first's."""

    note: discord.ui.TextInput[Any] = discord.ui.TextInput(
        label="Note", style=discord.TextStyle.paragraph, min_length=1, max_length=NOTE_LIMIT
    )

    def __init__(self, server_id: ServerId, call_id: CallId) -> None:
        custom_id = f"card:notemodal:{server_id}:{call_id}:{secrets.token_hex(8)}"
        super().__init__(title=f"Note on call #{call_id}", custom_id=custom_id)
        self.server_id = server_id
        self.call_id = call_id

    async def on_submit(self, interaction: discord.Interaction[Any], /) -> None:
        text = self.note.value  # read before any await: nothing may change it under us
        # Discord's client enforces the form's bounds; a crafted submit may not keep them
        problem = text_problem("note", text, NOTE_LIMIT)
        if problem is not None:
            await reply_ephemeral(interaction, user_message(problem))
            return
        # checked again: rights and calls can change while the modal is open
        if not await _may_act(interaction, "card Note", PostKind.DISPATCH, self.server_id, self.call_id):
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        answer = await interaction.client.communities.for_interaction(interaction).desk.add_note(
            interaction, "card Note", self.server_id, self.call_id, text
        )
        await interaction.followup.send(answer, ephemeral=True, allowed_mentions=NO_PINGS)

    async def on_error(  # type: ignore[override, unused-ignore]
        self, interaction: discord.Interaction[Any], error: Exception, /
    ) -> None:
        await report_error(interaction, error, "card note")


# --- what a click does -------------------------------------------------------------------------------------
async def act(interaction: Interaction, action: str, server_id: ServerId, call_id: CallId) -> None:
    label = f"card {LABELS[action]}"
    needs_dispatcher = action not in ATTACH_ACTIONS  # the CAD decides who may attach: it is the authority
    if not await _may_act(interaction, label, KIND_OF_ACTION[action], server_id, call_id, needs_dispatcher):
        return
    desk = interaction.client.communities.for_interaction(interaction).desk
    if action in ATTACH_ACTIONS:
        await interaction.response.defer(ephemeral=True, thinking=True)
        if action == "attach":
            text = await desk.attach_me(interaction, label, server_id, call_id)
        else:
            text = await desk.detach_me(interaction, label, server_id)
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)
    elif action == "note":
        await interaction.response.send_modal(NoteModal(server_id, call_id))
    else:

        async def recheck(confirming: Interaction) -> str | None:  # the same checks again, on Confirm
            return await refusal(confirming, label, KIND_OF_ACTION[action], server_id, call_id)

        await desk.confirm_end(interaction, label, server_id, call_id, is_911=action == "remove", recheck=recheck)


async def dispatcher_refusal(
    interaction: Interaction, action: str, server_id: ServerId, call_id: CallId | None
) -> str | None:
    """Why the member may not dispatch (the refusal audited), or None when they may."""
    if await may_dispatch(interaction):
        return None
    reason = user_message(NotDispatcher())
    audit_refusal(interaction, action, server_id, call_id, reason)
    return reason


async def refusal(
    interaction: Interaction,
    action: str,
    kind: PostKind,
    server_id: ServerId,
    call_id: CallId,
    needs_dispatcher: bool = True,
) -> str | None:
    """Why the member may not do this to this call here (refusals of rights and crafted clicks
    audited), or None when they may."""
    community = interaction.client.communities.for_interaction(interaction)
    if needs_dispatcher and (reason := await dispatcher_refusal(interaction, action, server_id, call_id)):
        return reason
    feed = community.feed
    channel_id = interaction.channel_id or 0
    if feed is not None:
        state = await feed.call_state(channel_id, server_id, kind, call_id)
    else:  # cluster mode: its engine runs in another process; the state they share says
        state = await stored_call_state(community, channel_id, server_id, kind, call_id)
    if state is None:  # never shown in this channel: a crafted interaction
        reason = not_shown_here(call_id)
        audit_refusal(interaction, action, server_id, call_id, reason)
        return reason
    if state is not PostState.ACTIVE:
        return no_longer_active(call_id)
    return None


async def _may_act(
    interaction: Interaction,
    action: str,
    kind: PostKind,
    server_id: ServerId,
    call_id: CallId,
    needs_dispatcher: bool = True,
) -> bool:
    """The member may do this to this call here, or has been told why not."""
    reason = await refusal(interaction, action, kind, server_id, call_id, needs_dispatcher)
    if reason is None:
        return True
    await reply_ephemeral(interaction, reason)
    return False


def _attach_on(interaction: Interaction) -> bool:
    community = interaction.client.communities.for_interaction(interaction)
    return community.settings.cad.api_version == 2
