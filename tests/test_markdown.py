"""The escaper: hostile player and CAD text renders literally, pings nobody, reorders nothing,
and stays within Discord's limits after escaping."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.embeds import FIELD_VALUE_LIMIT, clean
from bot.markdown import AT_GUARD, escape, is_inert, strip_invisible

# Every character that takes part in a Discord construct, plus words, digits, blanks and the
# controls that reorder or hide text.
TOKENS = [*"\\*_~|`>#-+[]()<>@&:!./= \t\n", "a", "b", "1", "9", "everyone", "here", "https://x.example"]
TOKENS += ["\u202e", "\u2066", "\u200b", "\u200f", "\ufeff", "\x00", "\r", "\U0001f6a8"]
HOSTILE = st.lists(st.sampled_from(TOKENS), max_size=200).map("".join)


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text.replace(AT_GUARD, "@"), flags=re.DOTALL)


def test_the_masked_link_line_is_inert() -> None:
    line = "Grove St [a](b) ||hidden|| **x** [Click here](https://evil.example) (c)"
    escaped = escape(line)
    assert is_inert(escaped) and not is_inert(line)
    assert escaped == (
        "Grove St \\[a\\]\\(b\\) \\|\\|hidden\\|\\| \\*\\*x\\*\\* \\[Click here\\]\\(https://evil.example\\) \\(c\\)"
    )


def test_lists_subtext_headings_and_quotes_after_a_blank_line() -> None:
    text = "calm\n\n- item\n-# small\n1. first\n  2. second\n> quote\n>>> block\n# head\n### head"
    escaped = escape(text)
    assert escaped == (
        "calm\n\n\\- item\n\\-# small\n1\\. first\n  2\\. second\n\\> quote\n\\>>> block\n\\# head\n\\### head"
    )
    assert is_inert(escaped)
    assert escape("1-A-12 on Route 68 - north, 3.5 km") == "1-A-12 on Route 68 - north, 3.5 km"  # mid-line: plain


def test_mentions_channels_commands_timestamps_and_emoji() -> None:
    text = "@everyone @here <@1> <@!2> <@&3> <#4> </dispatch:5> <t:1700000000:R> <:pepe:6> <a:dance:7>"
    escaped = escape(text)
    assert "@everyone" not in escaped and "@here" not in escaped
    assert "<" not in escaped.replace("\\<", "")
    assert is_inert(escaped)


def test_bidi_and_zero_width_controls_are_dropped() -> None:
    assert escape("abc\u202edef\u2066g\u200bh\ufeff") == "abcdefgh"
    assert strip_invisible("a\r\nb\rc") == "a\nb\nc"


@settings(max_examples=400, deadline=None)
@given(HOSTILE)
def test_escaped_text_has_no_live_construct(text: str) -> None:
    escaped = escape(text)
    assert is_inert(escaped), repr(escaped)
    assert unescape(escaped) == strip_invisible(text)  # and nothing visible was lost or added


@settings(max_examples=300, deadline=None)
@given(HOSTILE, st.integers(min_value=2, max_value=FIELD_VALUE_LIMIT))
def test_cleaned_text_is_inert_and_within_its_limit(text: str, limit: int) -> None:
    cleaned = clean(text, limit)
    assert len(cleaned) <= limit
    assert is_inert(cleaned.removesuffix("…")) or cleaned == "—", repr(cleaned)
