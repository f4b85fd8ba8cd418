"""Pure functions: call data in, `discord.Embed` or text out. No I/O, no bot state.

Everything that came from a player or the CAD goes through `clean()`: markdown and mentions are
escaped by `bot.markdown` (so `@everyone` or `<@&123>` in a description shows as text and pings
nobody, even before allowed_mentions), and Discord's length limits are met by visible truncation.
A message's embeds together must also stay within 6,000 characters: `embed_size` measures one as
Discord does (code points of title, description, field names and values, footer, author), and
`fit_embeds` shrinks a message's embeds until they fit.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from typing import Any

import discord

from .markdown import escape, strip_invisible
from .markdown import truncate as _truncate
from .sonoran.models import CallList, CallStatus, DispatchCall, EmergencyCall, Note, Origin
from .sonoran.numbers import UNKNOWN

TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
FIELDS_PER_EMBED = 25
EMBED_TOTAL_LIMIT = 6000
CHOICE_NAME_LIMIT = 100
LIST_NAME_LIMIT = 120
LIST_PAGE_OVERHEAD = 300  # a list page's title (<= 100), description and footer
ELLIPSIS = "…"

EMERGENCY_COLOUR = discord.Colour.red()
CIVIL_COLOUR = discord.Colour.orange()
DISPATCH_COLOUR = discord.Colour.blue()
ENDED_COLOUR = discord.Colour.dark_grey()
LIST_COLOUR = discord.Colour.blurple()

PRIORITY_LABELS = {1: "P1 (high)", 2: "P2", 3: "P3 (low)", UNKNOWN: "Unknown"}
# metaData keys worth showing dispatchers, with their labels
METADATA_LABELS = {"postal": "Postal", "plate": "Plate", "code": "Code", "block": "Block", "priority": "Priority"}


def truncate(text: str, limit: int) -> str:
    return _truncate(text, limit, ELLIPSIS)


def clean(text: Any, limit: int, *, empty: str = "—") -> str:
    """Player or CAD text, safe to show: markdown and mentions escaped, within `limit`."""
    raw = strip_invisible("" if text is None else str(text))
    raw = " ".join(raw.split()) if limit <= CHOICE_NAME_LIMIT else raw.strip()
    if not raw:
        return empty
    return truncate(escape(raw), limit)


def plain(text: Any, limit: int) -> str:
    """For places Discord never renders markdown (autocomplete labels): just one line, bounded."""
    return truncate(" ".join(strip_invisible("" if text is None else str(text)).split()), limit)


def embed_size(embed: discord.Embed) -> int:
    """The characters Discord counts towards a message's 6,000: code points, as it counts them."""
    size = len(embed.title or "") + len(embed.description or "")
    size += sum(len(field.name or "") + len(field.value or "") for field in embed.fields)
    size += len(embed.footer.text or "") + len(embed.author.name or "")
    return size


def fit_embeds(embeds: Sequence[discord.Embed], limit: int = EMBED_TOTAL_LIMIT) -> list[discord.Embed]:
    """The same embeds, their longest texts cut (visibly) until all of them together fit `limit`.
    Usually a no-op: batches are cut by size. It matters when calls grew after they were posted."""
    out = [discord.Embed.from_dict(e.to_dict()) for e in embeds]
    overflow = sum(map(embed_size, out)) - limit
    while overflow > 0:
        # the longest text anywhere: (length, embed index, field index or -1 for the description)
        candidates = [(len(e.description or ""), i, -1) for i, e in enumerate(out)]
        candidates += [(len(f.value or ""), i, j) for i, e in enumerate(out) for j, f in enumerate(e.fields)]
        length, index, field = max(candidates)
        if length <= 32:
            # only titles and names left: a message of 10 such embeds is far below the limit, so
            # this is reached only with absurd input; show stubs rather than be refused
            return [discord.Embed(title=truncate(e.title or "Call", 200), colour=e.colour) for e in out]
        keep = max(32, length - overflow, length // 2)
        embed = out[index]
        if field < 0:
            embed.description = truncate(embed.description or "", keep)
        else:
            old = embed.fields[field]
            embed.set_field_at(field, name=old.name, value=truncate(old.value or "", keep), inline=old.inline)
        overflow = sum(map(embed_size, out)) - limit
    return out


def timestamp(when: dt.datetime, style: str = "R") -> str:
    return discord.utils.format_dt(when, style)  # type: ignore[arg-type]


def from_unix(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def call_label(call: EmergencyCall | DispatchCall) -> str:
    """Autocomplete label: `#1042 · Armed robbery · Mission Row` (title or caller, then place)."""
    if isinstance(call, DispatchCall):
        what = call.title or call.code or "Dispatch call"
        where = call.address or call.postal
    else:
        what = call.caller or ("Emergency call" if call.is_emergency else "Civil call")
        where = call.location
    parts = [f"#{call.call_id}", what] + ([where] if where else [])
    return plain(" · ".join(parts), CHOICE_NAME_LIMIT)


def _number(value: Any) -> str:
    """Coordinates: numbers as they are (escaping would turn -8 into \\-8), anything else cleaned."""
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError, OverflowError):  # an integer past 1e308 is no float
        return clean(value, 20)


def _metadata_lines(metadata: dict[str, Any]) -> list[str]:
    lines = [
        f"**{label}:** {clean(metadata[key], 100)}"
        for key, label in METADATA_LABELS.items()
        if metadata.get(key) not in (None, "")
    ]
    if metadata.get("x") not in (None, "") and metadata.get("y") not in (None, ""):
        coords = ", ".join(_number(metadata[k]) for k in ("x", "y", "z") if metadata.get(k) not in (None, ""))
        lines.append(f"**Coordinates:** {coords}")
    return lines


def emergency_embed(
    call: EmergencyCall,
    *,
    server_id: int,
    first_seen: dt.datetime,
    state: str = "active",
    ended_at: dt.datetime | None = None,
    removed_by: str | None = None,
) -> discord.Embed:
    """A 911 call as the feed shows it. `state`: active, answered (now a dispatch call) or removed."""
    kind = "EMERGENCY" if call.is_emergency else "CIVIL"
    colour = EMERGENCY_COLOUR if call.is_emergency else CIVIL_COLOUR
    title = f"{'🚨' if call.is_emergency else '📞'} {kind} 911 call #{call.call_id}"
    if state != "active":
        colour = ENDED_COLOUR
        title = f"{kind} 911 call #{call.call_id} ({'answered' if state == 'answered' else 'removed'})"
    embed = discord.Embed(
        title=truncate(title, TITLE_LIMIT),
        description=clean(call.description, DESCRIPTION_LIMIT // 2),
        colour=colour,
        timestamp=first_seen,
    )
    embed.add_field(name="Caller", value=clean(call.caller, FIELD_VALUE_LIMIT), inline=True)
    embed.add_field(name="Location", value=clean(call.location, FIELD_VALUE_LIMIT), inline=True)
    details = _metadata_lines(call.metadata)
    if details:
        embed.add_field(name="Details", value=truncate("\n".join(details), FIELD_VALUE_LIMIT), inline=False)
    status = f"Received {timestamp(first_seen)}"
    if state == "answered" and ended_at:
        status += f" · Answered by dispatch {timestamp(ended_at)}"
    elif state == "removed" and ended_at:
        who = f" by {clean(removed_by, 100)}" if removed_by else ""
        status += f" · Removed{who} {timestamp(ended_at)}"
    embed.add_field(name="Status", value=status, inline=False)
    embed.set_footer(text=truncate(f"CAD server {server_id} · {kind.title()} call", FOOTER_LIMIT))
    return embed


def dispatch_embed(
    call: DispatchCall,
    *,
    server_id: int,
    first_seen: dt.datetime,
    closed: bool = False,
    ended_at: dt.datetime | None = None,
    closed_by: str | None = None,
    unit_names: Sequence[str | None] = (),
) -> discord.Embed:
    """`unit_names`: what the units roster calls each of `call.idents` (None where it does not
    know the unit yet: shown by its identifier)."""
    closed = closed or call.status == CallStatus.CLOSED
    heading = f"Dispatch call #{call.call_id}: {clean(call.title or call.code, 200, empty='untitled')}"
    embed = discord.Embed(
        title=truncate(heading + (" (closed)" if closed else ""), TITLE_LIMIT),
        description=clean(call.description, 1500, empty="") or None,
        colour=ENDED_COLOUR if closed else DISPATCH_COLOUR,
        timestamp=first_seen,
    )
    where = ", ".join(part for part in (call.address, call.block) if part)
    embed.add_field(name="Location", value=clean(where, 300), inline=True)
    if call.postal:
        embed.add_field(name="Postal", value=clean(call.postal, 50), inline=True)
    embed.add_field(name="Priority", value=PRIORITY_LABELS.get(call.priority, str(call.priority)), inline=True)
    status = "Closed" if closed else CallStatus.label(call.status)
    if closed and closed_by:
        status += f" by {clean(closed_by, 100)}"
    if closed and ended_at:
        status += f" {timestamp(ended_at)}"
    embed.add_field(name="Status", value=status, inline=True)
    if call.code:
        embed.add_field(name="Code", value=clean(call.code, 100), inline=True)
    embed.add_field(name="Units", value=units_value(call.idents, unit_names), inline=True)
    if call.notes:
        name, value = notes_field(call.notes)
        embed.add_field(name=name, value=value, inline=False)
    embed.set_footer(text=f"CAD server {server_id} · Origin: {Origin.label(call.origin)}")
    return embed


def units_value(idents: Sequence[int], names: Sequence[str | None] = ()) -> str:
    """The attached units by name (`1-A-12 Officer Reyes`), else by identifier (`#12`)."""
    if not idents:
        return "none attached"
    named = [
        clean(name, 80) if name else f"#{ident}" for ident, name in itertools.zip_longest(idents, names[: len(idents)])
    ]
    return truncate(", ".join(named), FIELD_VALUE_LIMIT)


NOTES_SHOWN = 5


def notes_field(notes: Sequence[Note]) -> tuple[str, str]:
    """The latest notes (at most NOTES_SHOWN), oldest first, as whole lines within a field's value:
    a note that does not fit is left out with those before it, never cut (a cut could land inside
    a `**label:**` and leave a stray `**`)."""
    lines: list[str] = []
    size = 0
    for note in reversed(notes[-NOTES_SHOWN:]):
        line = f"**{clean(note.label, 60, empty='?')}:** {clean(note.content, 300)}"
        size += len(line) + (1 if lines else 0)
        if size > FIELD_VALUE_LIMIT:
            break
        lines.append(line)
    more = len(notes) > len(lines)
    name = f"Notes ({len(notes)})" + (f", latest {len(lines)}" if more else "")
    return name, "\n".join(reversed(lines))


def _list_entry(call: EmergencyCall | DispatchCall, budget: int) -> tuple[str, str]:
    """One call as a list field, name and value together within `budget` characters."""
    if isinstance(call, EmergencyCall):
        kind = "🚨 Emergency" if call.is_emergency else "📞 Civil"
        name = f"#{call.call_id} · {kind} 911 · {plain(call.caller or 'unknown caller', 60)}"
        value = f"**Location:** {clean(call.location, 150)}\n{clean(call.description, 300)}"
    else:
        status = CallStatus.label(call.status)
        name = f"#{call.call_id} · {plain(call.title or call.code or 'Dispatch call', 80)} · {status}"
        where = clean(", ".join(p for p in (call.address, call.postal) if p), 150)
        value = f"**Location:** {where} · **{PRIORITY_LABELS.get(call.priority, call.priority)}**"
        if call.idents:
            value += f" · {len(call.idents)} unit(s)"
        if call.description:
            value += "\n" + clean(call.description, 250)
    # Field names are rendered as markdown too: escape them as well.
    name = clean(name, LIST_NAME_LIMIT)
    return name, truncate(value, min(FIELD_VALUE_LIMIT, budget - len(name)))


def calls_for_kind(calls: CallList, kind: str) -> list[EmergencyCall | DispatchCall]:
    """The calls `/calls kind:` asks for; "emergency" is emergency-only, as everywhere in the bot."""
    chosen: list[EmergencyCall | DispatchCall] = []
    if kind in ("all", "911"):
        chosen.extend(calls.calls_911)
    elif kind in ("emergency", "civil"):
        chosen.extend(c for c in calls.calls_911 if c.is_emergency == (kind == "emergency"))
    if kind in ("all", "dispatch"):
        chosen.extend(calls.active)
    if kind == "closed":
        chosen.extend(calls.closed)
    return chosen


KIND_TITLES = {
    "all": "Active calls",
    "911": "Active 911 calls",
    "emergency": "Active emergency 911 calls",
    "civil": "Active civil 911 calls",
    "dispatch": "Active dispatch calls",
    "closed": "Closed calls",
}


def call_list_pages(
    entries: Sequence[EmergencyCall | DispatchCall],
    *,
    title: str,
    server_id: int,
    as_of: dt.datetime,
    per_page: int = 10,
) -> list[discord.Embed]:
    """Embeds of `per_page` calls each (the last may hold fewer; no calls: one embed saying so).
    Each entry gets an equal share of the 6,000 characters, so every page fits, whatever the text."""
    per_page = max(1, min(per_page, FIELDS_PER_EMBED))
    budget = (EMBED_TOTAL_LIMIT - LIST_PAGE_OVERHEAD) // per_page
    chunks = [entries[start : start + per_page] for start in range(0, len(entries), per_page)] or [[]]
    embeds = []
    for index, chunk in enumerate(chunks, start=1):
        embed = discord.Embed(title=truncate(title, 100), colour=LIST_COLOUR, timestamp=as_of)
        embed.description = (
            f"{len(entries)} call(s) on CAD server {server_id} · as of {timestamp(as_of)}"
            if entries
            else f"No calls on CAD server {server_id} right now · as of {timestamp(as_of)}"
        )
        for call in chunk:
            name, value = _list_entry(call, budget)
            embed.add_field(name=name, value=value, inline=False)
        embed.set_footer(text=f"Page {index} of {len(chunks)}")
        embeds.append(embed)
    return embeds


def unavailable_embed(*, title: str, ended: bool) -> discord.Embed:
    """Stands in for a call Discord refused to show, so that it does not hold up the channel."""
    return discord.Embed(
        title=truncate(title, TITLE_LIMIT),
        description="Discord refused to show this call's text. Use /calls to see it.",
        colour=ENDED_COLOUR if ended else CIVIL_COLOUR,
    )


def shows_as_sent(message: discord.Message, sent: Sequence[discord.Embed]) -> list[bool]:
    """For each embed sent, whether the message Discord answered with shows it. With a nonce it has
    seen, Discord answers with the message it made then, which may show what an earlier attempt
    rendered (a crash or a 5xx came between)."""
    showing = [embed_fingerprint(embed) for embed in message.embeds]
    return [index < len(showing) and showing[index] == embed_fingerprint(embed) for index, embed in enumerate(sent)]


def embed_fingerprint(embed: discord.Embed) -> tuple[Any, ...]:
    """What a reader sees of an embed: enough to tell whether a message shows what was sent."""
    return (
        embed.title or None,
        embed.description or None,
        embed.colour.value if embed.colour else None,
        tuple((field.name, field.value) for field in embed.fields),
        embed.footer.text or None,
    )
