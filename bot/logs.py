"""One log format for the whole process, with every secret scrubbed from every line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import TextIO

import discord

from .sonoran.redaction import Redactor

FORMAT = "[{asctime}] [{levelname:<7}] {name}: {message}"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then removes the secrets from the whole line, traceback included."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__(FORMAT, DATE_FORMAT, style="{")
        self._redact = Redactor(*secrets)

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))


def silence_voice_warnings() -> None:
    """A dispatch bot never joins voice: no need to warn at every start that voice libraries are missing."""
    discord.VoiceClient.warn_nacl = False
    discord.VoiceClient.warn_dave = False


def setup_logging(level: str, secrets: Iterable[str] = (), stream: TextIO | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(RedactingFormatter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    numeric = logging.getLevelName(level)
    # discord.py is chatty: its HTTP layer and gateway at WARNING, the rest at INFO at most.
    logging.getLogger("discord").setLevel(max(logging.INFO, numeric))
    logging.getLogger("discord.http").setLevel(logging.WARNING)
    logging.getLogger("discord.gateway").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # aiosqlite logs every statement at DEBUG (nine lines in ten of a DEBUG log): quiet, unless asked
    # for by name (logging.getLogger("aiosqlite").setLevel(logging.DEBUG) in a debugging session)
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    return handler
