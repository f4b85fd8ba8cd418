"""One running bot per state file.

Two bots on one state file would both poll (twice the Sonoran budget) and both edit the same
messages. `run` holds an exclusive lock on `<state.path>.lock` for as long as it runs; the file
holds the holder's pid, so a second `run` stops with one line naming the file and that pid. The
kernel drops the lock when the process ends, SIGKILL included, so a crash never leaves a stale one.
A lock file that cannot be opened (one left by a run as root, say) stops `run` too, with one line
naming the file and the fix: running without the lock would let two bots share the state file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO


class AlreadyRunning(Exception):
    """Another process holds the state file's lock."""

    def __init__(self, state_path: Path, pid: int | None) -> None:
        holder = f"pid {pid}" if pid is not None else "another process"
        super().__init__(
            f"state.path {state_path} is in use by another running bot ({holder}, lock {lock_path(state_path)}). "
            "Stop that one first, or give this one a state.path of its own"
        )
        self.state_path = state_path
        self.pid = pid


class LockUnavailable(Exception):
    """The state file's lock file cannot be opened, so nothing would keep a second bot out."""

    def __init__(self, state_path: Path, error: OSError) -> None:
        lock = lock_path(state_path)
        super().__init__(
            f"cannot open the lock file {lock} ({error.strerror or type(error).__name__}), which keeps a second "
            f"bot off state.path {state_path}. Fix: give the bot's user write access to {lock.parent} and the "
            f"file (one left by a run as root: chown it to the bot's user, or delete it while no bot runs)"
        )
        self.state_path = state_path


def lock_path(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".lock")


def in_use(state_path: Path) -> AlreadyRunning | None:
    """Who holds the lock (as the error a second `run` would stop with), or None when nobody does."""
    try:
        with instance_lock(state_path):
            return None
    except AlreadyRunning as running:
        return running


@contextlib.contextmanager
def instance_lock(state_path: Path) -> Iterator[None]:
    """Holds the state file's lock, or raises AlreadyRunning (someone holds it) or LockUnavailable
    (the lock file cannot be opened). An in-memory state needs none."""
    if str(state_path) == ":memory:":
        yield
        return
    try:
        state_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        # no folder for the state file either: its own error, which names state.path, stops the
        # start (and so no second bot can use that file)
        yield
        return
    try:
        handle = open(lock_path(state_path), "a+")  # noqa: SIM115  (held open for the whole run)
    except OSError as error:
        raise LockUnavailable(state_path, error) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(state_path, _pid_in(handle)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pid_in(handle: IO[str]) -> int | None:
    try:
        handle.seek(0)
        text = handle.read().strip()
    except OSError:
        return None
    return int(text) if text.isascii() and text.isdigit() else None
