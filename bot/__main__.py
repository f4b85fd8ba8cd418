"""`python -m bot [--config PATH] [run|check|sync|health]` (the code is in `bot.cli`)."""

from __future__ import annotations

import os
import signal
import sys


def _stop_before_start(signum: int, frame: object) -> None:
    # Nothing is open yet that needs closing, and an exception raised here could land inside a
    # library's native code (pydantic-core panics on it): leave at once, cleanly.
    os._exit(0)


# A stop asked for while the process is still starting (the imports below take a moment) is a
# clean exit, not a kill or a traceback; `run` installs its own handlers once its event loop is up.
signal.signal(signal.SIGTERM, _stop_before_start)
signal.signal(signal.SIGINT, _stop_before_start)

from .cli import main  # noqa: E402

signal.signal(signal.SIGINT, signal.default_int_handler)  # from here on, Ctrl-C is KeyboardInterrupt

__all__ = ["console", "main"]


def console() -> None:
    """`python -m bot` and the `sonoran-dispatch-bot` console script alike."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C before `run` took over the signals, or in check and sync
        sys.exit(0)


if __name__ == "__main__":
    console()
