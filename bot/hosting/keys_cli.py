"""`python -m bot keys generate` and `python -m bot keys rotate`: the master keys of a hosted deployment.

`rotate` is safe while the bot runs (one transaction, the registry's only writer meanwhile, on SQLite
and on PostgreSQL): put a new key in front of hosting.secret_keys, run it, then the older keys may
go (restart the bot with the new list).
"""

from __future__ import annotations

import sys

from ..config import Settings
from ..store import StateFileError
from .registry import Registry
from .secrets import MasterKeyError, SecretBox, master_keys

EXIT_OK, EXIT_PROBLEM = 0, 1


def generate() -> int:
    """Prints a new master key, and nothing else (so that it can be piped into a file)."""
    print(SecretBox.generate_key())
    return EXIT_OK


async def rotate(settings: Settings) -> int:
    """Re-encrypts every community's key and push token under the newest master key."""
    if not settings.hosting.enabled:
        print(
            "keys rotate: hosting.enabled is false: only a hosted deployment keeps sealed keys "
            "(a single community's key stays in its configuration)",
            file=sys.stderr,
        )
        return EXIT_PROBLEM
    try:
        box = SecretBox(master_keys(settings.hosting))
        registry = await Registry.open_state(settings.state, box)
    except (MasterKeyError, StateFileError) as error:
        print(f"keys rotate: {error}", file=sys.stderr)
        return EXIT_PROBLEM
    try:
        count = await registry.rotate_keys()
    except MasterKeyError as error:
        print(f"keys rotate: {error}; nothing was changed", file=sys.stderr)
        return EXIT_PROBLEM
    finally:
        await registry.close()
    print(f"re-encrypted {count} communities' keys under the newest master key")
    print("the older master keys may now be removed from hosting.secret_keys (then restart the bot)")
    return EXIT_OK
