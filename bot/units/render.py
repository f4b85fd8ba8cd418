"""Pure functions: a panic alert and a unit board as Discord embeds. No I/O, no bot state.

Unit numbers, names, departments and locations come from players: all of it goes through
`clean()`, so nothing in them formats text or pings anyone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import discord

from ..embeds import DESCRIPTION_LIMIT, clean, from_unix, timestamp
from ..sonoran.models import CallId, ServerId, Unit
from ..sonoran.numbers import UNKNOWN
from .records import Alert

PANIC_COLOUR = discord.Colour.red()
CLEARED_COLOUR = discord.Colour.dark_grey()
BOARD_COLOUR = discord.Colour.dark_teal()
PAGE_BUDGET = 3_900  # characters of one board page's description (Discord allows 4,096)
MAX_PAGES = 5  # messages of one board; past them, a summary line
Labeller = Callable[[int], str]


def unit_name(unit: Unit) -> str:
    """`1A-12 J. Smith`, or the identifier's number while the CAD has not said more."""
    number = clean(unit.data.unit_num, 20, empty="")
    name = clean(unit.data.name, 60, empty="")
    return " ".join(part for part in (number, name) if part) or f"unit #{unit.id}"


def alert_content(alert: Alert, role_id: int) -> str:
    """The alert message's text: the role's mention (the one ping the bot may send) and who."""
    who = unit_name(alert.unit)
    return f"<@&{role_id}> PANIC: {who}" if role_id else f"PANIC: {who}"


def alert_embed(alert: Alert) -> discord.Embed:
    unit = alert.unit
    cleared = alert.cleared_at is not None
    title = f"{'Panic cleared' if cleared else '🚨 PANIC'}: {unit_name(unit)}"
    embed = discord.Embed(title=title[:256], colour=CLEARED_COLOUR if cleared else PANIC_COLOUR)
    department = " · ".join(clean(text, 60) for text in (unit.data.department, unit.data.subdivision) if text.strip())
    embed.add_field(name="Department", value=department or "—", inline=True)
    embed.add_field(name="Location", value=clean(unit.location or unit.aop, 200), inline=True)
    embed.add_field(name="Call", value=clean(alert.call, 200) if alert.call else "none", inline=True)
    lines = [f"Pressed {timestamp(from_unix(alert.started_at), 'R')}"]
    if alert.cleared_at is not None:
        lines.append(f"Cleared {timestamp(from_unix(alert.cleared_at), 't')}")
    if alert.acked_by:
        when = f" {timestamp(from_unix(alert.acked_at), 'R')}" if alert.acked_at else ""
        lines.append(f"Acknowledged by {clean(alert.acked_by, 80)}{when}")
    else:
        lines.append("Not acknowledged yet" if not cleared else "Nobody acknowledged it")
    embed.description = "\n".join(lines)
    embed.set_footer(text=f"CAD server {alert.server_id} · identifier #{unit.id}")
    embed.timestamp = from_unix(alert.started_at)
    return embed


def board_lines(units: Mapping[int, Unit], calls: Mapping[int, CallId], label: Labeller) -> list[str]:
    """The board's lines: units in panic first, then by status (in the order of the community's
    labels, a status the CAD sent that could not be read last), each group under its heading, each
    unit with its number, name, department and call."""
    groups: dict[str, list[Unit]] = {}
    panic = [u for u in units.values() if u.is_panic]
    for unit in sorted(units.values(), key=lambda u: (u.status == UNKNOWN, u.status, u.data.unit_num, u.id)):
        if not unit.is_panic:
            groups.setdefault("Unknown status" if unit.status == UNKNOWN else label(unit.status), []).append(unit)
    lines: list[str] = []
    for heading, members in ([("🚨 PANIC", panic)] if panic else []) + list(groups.items()):
        lines.append(f"**{clean(heading, 50)}** ({len(members)})")
        lines.extend(_unit_line(unit, calls.get(unit.id)) for unit in members)
    return lines


def _unit_line(unit: Unit, call_id: CallId | None) -> str:
    # bold, not a code span: inside one, the escapes that keep player text inert would show
    parts = [f"**{clean(unit.data.unit_num, 20, empty='#' + str(unit.id))}**"]
    if unit.data.name.strip():
        parts.append(clean(unit.data.name, 40))
    if unit.data.department.strip():
        parts.append(clean(unit.data.department, 30))
    if call_id is not None:
        parts.append(f"on call #{call_id}")
    return "• " + " · ".join(parts)


def board_pages(
    server_id: ServerId, units: Mapping[int, Unit], calls: Mapping[int, CallId], label: Labeller
) -> list[discord.Embed]:
    """The board as pages, one embed a message, each within Discord's limits: as many pages as the
    lines need, up to MAX_PAGES; past that, the last page says how many units are not listed."""
    lines = board_lines(units, calls, label)
    pages: list[list[str]] = [[]]
    sizes = [0]
    for line in lines:
        if sizes[-1] + len(line) + 1 > PAGE_BUDGET:
            pages.append([])
            sizes.append(0)
        pages[-1].append(line)
        sizes[-1] += len(line) + 1
    if len(pages) > MAX_PAGES:
        shown = pages[:MAX_PAGES]
        while sizes[MAX_PAGES - 1] + 80 > PAGE_BUDGET:  # room for the summary line
            sizes[MAX_PAGES - 1] -= len(shown[-1].pop()) + 1
        listed = sum(1 for page in shown for line in page if line.startswith("• "))
        shown[-1].append(f"… and {len(units) - listed} more units on duty, not listed (Discord's limits)")
        pages = shown
    title = f"Units on duty · CAD server {server_id}"
    embeds = []
    for index, page in enumerate(pages, start=1):
        embed = discord.Embed(
            title=title if index == 1 else f"{title} (continued)",
            description="\n".join(page)[:DESCRIPTION_LIMIT] or "No units on duty.",
            colour=PANIC_COLOUR if any(u.is_panic for u in units.values()) else BOARD_COLOUR,
        )
        embed.set_footer(text=f"{len(units)} on duty · page {index} of {len(pages)}")
        embeds.append(embed)
    return embeds
