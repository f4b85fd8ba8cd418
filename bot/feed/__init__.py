"""The feed engine, a room of its own:

- `planner`: pure functions from what a channel shows (its `Book`) and what the CAD says (a poll's
  call list, a push event) to what to store, post and edit;
- `engine`: the poll loop and the push intake; plans and stores under one lock that never covers a
  write to Discord, remembers which 911 calls were answered, and wakes the writers;
- `outbox`: one writer per channel, delivering what was stored, new posts first;
- `sender`: renders, batches, posts and edits, each write bounded in time;
- `listener` and `websocket`: the push listener (HTTP, facing the internet) and SignalR sessions.

The bot builds and starts the engine in `setup_hook` (`bot.core`) and stops it in `close()`;
`cogs/feed.py` only offers `poll_once()` over it. The desk asks it for a call's state through
`bot.feed.call_state`.

The package imports nothing itself: the units room (`bot.units`) delivers through the writers in
`outbox`, and the engine drives the units room, so an eager import here would be a circle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import FeedEngine

__all__ = ["FeedEngine"]


def __getattr__(name: str) -> Any:
    if name == "FeedEngine":
        from .engine import FeedEngine

        return FeedEngine
    raise AttributeError(f"module 'bot.feed' has no attribute {name!r}")
