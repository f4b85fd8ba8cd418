"""The **Acknowledge** button on a panic alert: a dispatcher says "I have it"; the alert then shows
who and when, and the click is audited.

Persistent without a view in memory (a `DynamicItem` whose custom_id holds the alert's number,
`alert:ack:17`), so a click on an alert from before a restart still works. A click is checked as a
dispatcher's command is (a crafted interaction can press a button the member never saw), and on
an alert this channel never showed it does nothing.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import discord

from ..audit import DONE, audit, audit_refusal
from ..cards import dispatcher_refusal
from ..messages import acknowledged, alert_not_here
from ..tree import reply_ephemeral, report_error
from .records import Alert

if TYPE_CHECKING:
    from ..aliases import Interaction

ACTION = "panic Acknowledge"


def alert_view(alert: Alert) -> discord.ui.View | None:
    """The alert's button while it can still be acknowledged; None takes the buttons away."""
    if alert.cleared_at is not None or alert.acked_by:
        return None
    view = discord.ui.View(timeout=None)
    view.add_item(AcknowledgeButton(alert.id))
    view.stop()  # clicks are routed by the dynamic item
    return view


class AcknowledgeButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"alert:ack:(?P<id>[0-9]{1,18})"):
    def __init__(self, alert_id: int) -> None:
        super().__init__(
            discord.ui.Button(label="Acknowledge", style=discord.ButtonStyle.danger, custom_id=f"alert:ack:{alert_id}")
        )
        self.alert_id = alert_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> AcknowledgeButton:
        return cls(int(match["id"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await acknowledge(interaction, self.alert_id)
        except Exception as error:  # the same readable, ephemeral answer as a slash command's
            await report_error(interaction, error, "alert acknowledge")


def _whose(alert: Alert) -> str:
    if alert.members is not None:
        return (
            "units "
            + ", ".join(f"#{unit.id}" for unit in alert.members[:20])
            + (" …" if len(alert.members) > 20 else "")
        )
    return f"unit #{alert.ident}"


async def acknowledge(interaction: Interaction, alert_id: int) -> None:
    community = interaction.client.communities.for_interaction(interaction)
    units = community.units
    alert = await units.alert(alert_id) if units is not None else None
    if alert is None or alert.channel_id != interaction.channel_id:  # never shown here: a crafted click
        server_id = alert.server_id if alert else community.main_server
        audit_refusal(interaction, ACTION, server_id, None, alert_not_here())
        await reply_ephemeral(interaction, alert_not_here())
        return
    if reason := await dispatcher_refusal(interaction, ACTION, alert.server_id, None):
        await reply_ephemeral(interaction, reason)
        return
    assert units is not None
    now, took = await units.acknowledge(alert_id, interaction.user.display_name)
    if took:
        audit(interaction, ACTION, alert.server_id, None, DONE, _whose(alert))
    await reply_ephemeral(interaction, acknowledged(now, took=took))
