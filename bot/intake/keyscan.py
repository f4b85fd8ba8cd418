"""The `key` of a push body from its first bytes, so that a big body with a wrong key is refused
without reading and parsing the rest (Sonoran and the FiveM resource put `key` first)."""

from __future__ import annotations

import json
import json.decoder
import re
from collections.abc import Callable
from typing import cast

MAX_MEMBERS = 8  # members looked at before giving up: `key` comes first or close to it
_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
# json's own string reader (C-accelerated), which typeshed does not list: (text, end, strict) -> (str, end)
scanstring = cast(Callable[[str, int, bool], tuple[str, int]], json.decoder.scanstring)  # type: ignore[attr-defined]


def leading_key(prefix: bytes) -> str | None:
    """The top-level `key` of the JSON object that `prefix` starts, when it is text and every
    member before it lies whole in `prefix`; None when the prefix cannot tell (the whole body is
    then parsed as usual). Only a refusal is decided on it: a key that matches is read again with
    the whole body. (With two `key` members, the first one is read here; json.loads keeps the last.)"""
    try:
        text = prefix.decode("utf-8")
    except UnicodeDecodeError as error:  # a character cut at the end of the prefix, or not UTF-8
        text = prefix[: error.start].decode("utf-8")
    at = _skip(text, 0)
    if not text.startswith("{", at):
        return None
    at += 1
    try:
        for _ in range(MAX_MEMBERS):
            at = _skip(text, at)
            if not text.startswith('"', at):
                return None
            name, at = scanstring(text, at + 1, True)
            at = _skip(text, at)
            if not text.startswith(":", at):
                return None
            at = _skip(text, at + 1)
            if name == "key":
                if not text.startswith('"', at):
                    return None  # not text: the whole body's reading says what it is
                value, _ = scanstring(text, at + 1, True)
                value.encode("utf-8")  # a lone surrogate is not text: the whole body is refused 400
                return value
            _, at = _DECODER.raw_decode(text, at)
            at = _skip(text, at)
            if not text.startswith(",", at):
                return None
            at += 1
    except (ValueError, RecursionError):  # a member cut by the end of the prefix, or not JSON
        return None
    return None


def _skip(text: str, at: int) -> int:
    match = _SPACE.match(text, at)
    return match.end() if match else at
