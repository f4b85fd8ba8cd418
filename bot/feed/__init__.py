"""The feed engine, a room of its own:

- `planner`: pure functions from what a channel shows (its `Book`) and what the CAD says (a poll's
  call list, a push event) to what to store, post and edit;
- `engine`: the poll loop, and the events intake (`bot.intake`) hands it; plans and stores under
  one lock that never covers a write to Discord, remembers which 911 calls were answered, and
  wakes the writers. It opens no port;
- `lane`: a feed's call posts as a lane of their channel's writer (`bot.delivery.outbox`), new
  posts first;
- `sender`: renders, batches, posts and edits a feed's posts through the community's channels
  (`bot.delivery`), and records what each message shows.

Contract: one engine per community (`bot.community`), built by the composition root (`bot.app`)
with the community's `Channels` and units engine, started and stopped with the community. The
cards ask it for a call's state (`call_state`); `cogs/feed.py` only offers `poll_once()` over
every community's engine.

The package imports nothing itself, so that each module may be imported alone.
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
