"""Pure formatting: limits, escaping, labels."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.embeds import (
    EMBED_TOTAL_LIMIT,
    call_label,
    call_list_pages,
    clean,
    dispatch_embed,
    embed_size,
    emergency_embed,
    fit_embeds,
)
from bot.sonoran import DispatchCall, EmergencyCall

from .doubles.discord_limits import message_errors

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
HUGE = "x" * 10_000


def test_clean_escapes_and_truncates_visibly() -> None:
    assert (
        clean("@everyone **hi** <@&123456789012345678>", 100)
        == "@\u200beveryone \\*\\*hi\\*\\* \\<@\u200b&123456789012345678>"
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
    assert any(f.name == "Notes (30), latest 2" for f in embed.fields)  # as many whole notes as fit


def notes_fields(call: DispatchCall) -> list[Any]:
    return [f for f in dispatch_embed(call, server_id=1, first_seen=NOW).fields if (f.name or "").startswith("Notes")]


def test_the_notes_field_is_cut_at_whole_notes() -> None:
    notes = [{"label": f"1-A-{n}", "content": f"note {n} " + "y" * 290} for n in range(8)]
    call = DispatchCall.model_validate({"callId": 3, "title": "Robbery", "notes": notes})
    (field,) = notes_fields(call)
    lines = (field.value or "").split("\n")
    assert field.name == "Notes (8), latest 3" and len(field.value or "") <= 1024
    assert [line.split(":**")[0] for line in lines] == ["**1-A-5", "**1-A-6", "**1-A-7"]  # the latest, in order
    assert all(line.count("**") == 2 and line.endswith("y") for line in lines)  # never a stray ** or a cut note
    few = DispatchCall.model_validate({"callId": 4, "notes": notes[:2]})
    (field,) = notes_fields(few)
    assert field.name == "Notes (2)" and (field.value or "").count("\n") == 1


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


HOSTILE_TEXT = st.lists(st.sampled_from([*"\\*_~|`>#-+[]()<@\n ", "x" * 50, "é", "🚨", "1."]), max_size=400).map(
    "".join
)
CALLS = st.lists(
    st.one_of(
        st.builds(
            lambda i, t: EmergencyCall.model_validate(
                {"callId": i, "caller": t, "location": t, "description": t, "metaData": {"postal": t}}
            ),
            st.integers(1, 10**9),
            HOSTILE_TEXT,
        ),
        st.builds(
            lambda i, t: DispatchCall.model_validate(
                {"callId": i, "title": t, "address": t, "description": t, "idents": [1, 2]}
            ),
            st.integers(1, 10**9),
            HOSTILE_TEXT,
        ),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CALLS, st.integers(1, 25))
def test_any_call_list_renders_within_discords_limits(calls: list[EmergencyCall | DispatchCall], per_page: int) -> None:
    pages = call_list_pages(calls, title="Closed calls", server_id=1, as_of=NOW, per_page=per_page)
    assert sum(len(p.fields) for p in pages) == len(calls)
    for page in pages:
        assert message_errors({"embeds": [page.to_dict()]}) == {}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CALLS)
def test_fit_embeds_makes_any_ten_feed_embeds_one_message(calls: list[EmergencyCall | DispatchCall]) -> None:
    embeds = [
        emergency_embed(c, server_id=1, first_seen=NOW)
        if isinstance(c, EmergencyCall)
        else dispatch_embed(c, server_id=1, first_seen=NOW)
        for c in calls[:10]
    ]
    fitted = fit_embeds(embeds)
    assert len(fitted) == len(embeds)
    if embeds:
        assert message_errors({"embeds": [e.to_dict() for e in fitted]}) == {}
    assert [e.title for e in fitted] == [e.title for e in embeds] or sum(map(embed_size, embeds)) > 6000
