"""Text from players and the CAD, made inert for Discord: it renders literally, pings nobody and
cannot reorder a line. Pure functions; no discord.py.

discord.py's `escape_markdown` works construct by construct and misses some (a masked link after
a spoiler, a list item after a blank line). This escaper does not try to recognise constructs:
every character that can start or close one is backslash-escaped wherever it can act, so no
combination can form one. Discord honours a backslash before any ASCII punctuation.

- emphasis, strike, spoiler, code and fences: * _ ~ | `
- quotes, headings, subtext, lists: > # - + where they start a line, and the dot of a
  numbered item ("1."); elsewhere these are plain text and stay as they are
- masked links: [ ] ( )
- channels, roles, users, slash commands, timestamps, custom emoji: < (and @ below)
- @everyone, @here and other mentions: a zero-width space after every @, as discord.py does,
  which keeps the plain word "@everyone" out of the text altogether
- the backslash itself
Bidi and zero-width controls, and other control characters except newline and tab, are dropped.
"""

from __future__ import annotations

import re

ANYWHERE = frozenset("\\*_~|`[]()<")
LINE_START = frozenset("-+#>")  # lists, subtext, headings, quotes: only as a line's first character
AT_GUARD = "@\u200b"
_ESCAPE = re.compile("([" + re.escape("".join(sorted(ANYWHERE))) + "])")
_LINE_START = re.compile(r"(?m)^([ \t]*)([-+#>])")
# The dot only matters after a line's leading number ("1. item"); elsewhere it is left alone.
_NUMBERED_ITEM = re.compile(r"(?m)^([ \t]*\d+)\.")
_INVISIBLE = re.compile(
    "["
    "\u0000-\u0008\u000b-\u001f\u007f-\u009f"  # C0 (but tab and newline) and C1 controls
    "\u061c\u200b-\u200f"  # Arabic letter mark, zero-width space/non-joiner/joiner, LRM, RLM
    "\u202a-\u202e\u2060-\u2064\u2066-\u2069"  # embeddings, overrides, word joiner, isolates
    "\ufeff\ufff9-\ufffb"  # BOM / zero-width no-break space, interlinear annotations
    "]"
)


def strip_invisible(text: str) -> str:
    """Removes bidi and zero-width controls (and other control characters but newline and tab)."""
    return _INVISIBLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def escape(text: str) -> str:
    """`text` as Discord will show it literally: no markdown, no mention, no reordering."""
    escaped = _ESCAPE.sub(r"\\\1", strip_invisible(text)).replace("@", AT_GUARD)
    escaped = _LINE_START.sub(r"\1\\\2", escaped)
    return _NUMBERED_ITEM.sub(r"\1\\.", escaped)


def is_inert(text: str) -> bool:
    """True when no Discord construct can form in `text`: every special character escaped, every
    @ guarded, nothing invisible. The property `escape` guarantees, checked independently."""
    unguarded = text.replace(AT_GUARD, "")
    if "@" in unguarded or _INVISIBLE.search(unguarded):
        return False
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            following = text[index + 1] if index + 1 < len(text) else ""
            if following not in ANYWHERE | LINE_START | {"."} or not following:
                return False
            index += 2
            continue
        if char in ANYWHERE:
            return False
        index += 1
    return not (_LINE_START.search(text) or _NUMBERED_ITEM.search(text))


def truncate(text: str, limit: int, ellipsis: str = "…") -> str:
    """At most `limit` code points, visibly cut, never leaving half an escape behind."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - len(ellipsis))]
    trailing = len(cut) - len(cut.rstrip("\\"))
    if trailing % 2:  # an odd run of backslashes at the end: the last one escaped what was cut
        cut = cut[:-1]
    if cut.endswith("@"):  # its guard was cut off
        cut = cut[:-1]
    return cut + ellipsis
