"""Pure formatting: limits, escaping, labels."""

from __future__ import annotations

import datetime as dt

from bot.embeds import (
    EMBED_TOTAL_LIMIT,
    call_label,
    call_list_pages,
    clean,
    dispatch_embed,
    emergency_embed,
)
from bot.sonoran import DispatchCall, EmergencyCall

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
HUGE = "x" * 10_000


def test_clean_escapes_and_truncates_visibly() -> None:
    assert (
        clean("@everyone **hi** <@&123456789012345678>", 100)
        == "@\u200beveryone \\*\\*hi\\*\\* <@\u200b&123456789012345678>"
    )
    text = clean("a" * 50, 10)
    assert len(text) == 10 and text.endswith("…")
    assert clean("", 10) == "—" and clean(None, 10) == "—"
    assert not clean("*" * 20, 10).endswith("\\…")  # never half an escape


def test_huge_calls_stay_within_discord_limits() -> None:
    call = EmergencyCall.model_validate(
        {
            "callId": 1,
            "caller": HUGE,
            "location": HUGE,
            "description": HUGE,
            "metaData": {"postal": HUGE, "x": "1", "y": "2"},
        }
    )
    embed = emergency_embed(call, server_id=1, first_seen=NOW, state="removed", ended_at=NOW, removed_by=HUGE)
    assert len(embed) <= EMBED_TOTAL_LIMIT and "…" in embed.description  # type: ignore[operator]
    assert all(len(f.value or "") <= 1024 and len(f.name or "") <= 256 for f in embed.fields)
    notes = [{"label": HUGE, "content": HUGE}] * 30
    dispatch = DispatchCall.model_validate(
        {
            "callId": 2,
            "title": HUGE,
            "description": HUGE,
            "address": HUGE,
            "code": HUGE,
            "notes": notes,
            "idents": list(range(40)),
        }
    )
    embed = dispatch_embed(dispatch, server_id=1, first_seen=NOW)
    assert len(embed) <= EMBED_TOTAL_LIMIT and len(embed.title or "") <= 256
    assert any(f.name == "Notes (30), latest 5" for f in embed.fields)


def test_list_pages_respect_field_and_size_limits() -> None:
    calls = [
        EmergencyCall.model_validate({"callId": i, "caller": HUGE, "location": HUGE, "description": HUGE})
        for i in range(40)
    ]
    pages = call_list_pages(calls, title="Active calls", server_id=1, as_of=NOW)
    assert sum(len(p.fields) for p in pages) == 40
    assert all(len(p) <= EMBED_TOTAL_LIMIT and len(p.fields) <= 25 for p in pages)
    assert pages[-1].footer.text == f"Page {len(pages)} of {len(pages)}"


def test_labels() -> None:
    dispatch = DispatchCall.model_validate({"callId": 1042, "title": "Armed robbery", "address": "Mission Row"})
    assert call_label(dispatch) == "#1042 · Armed robbery · Mission Row"
    call = EmergencyCall.model_validate({"callId": 7, "caller": "Anna\nSmith", "location": "Grove St"})
    assert call_label(call) == "#7 · Anna Smith · Grove St"
    assert len(call_label(EmergencyCall.model_validate({"callId": 8, "caller": HUGE}))) == 100


def test_unknown_enum_values_render() -> None:
    dispatch = DispatchCall.model_validate({"callId": 1, "status": 9, "origin": 42, "priority": 7})
    embed = dispatch_embed(dispatch, server_id=3, first_seen=NOW)
    fields = {f.name: f.value for f in embed.fields}
    assert fields["Status"] == "#9" and fields["Priority"] == "7" and embed.footer.text == "CAD server 3 · Origin: #42"
