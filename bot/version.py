"""The bot's version, from one source: the installed package's metadata (pyproject.toml)."""

from __future__ import annotations

import importlib.metadata

PACKAGE = "sonoran-dispatch-bot"


def version() -> str:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"
