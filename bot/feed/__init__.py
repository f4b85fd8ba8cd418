"""The feed engine, a room of its own:

- `planner`: pure functions from what a channel shows (its `Book`) and what the CAD says (a poll's
  call list, a push event) to what to store, post and edit;
- `engine`: the poll loop and the push intake; plans and stores under one lock that never covers a
  write to Discord, remembers which 911 calls were answered, and wakes the writers;
- `outbox`: one writer per channel, delivering what was stored, new posts first;
- `sender`: renders, batches, posts and edits, each write bounded in time;
- `listener` and `websocket`: the push listener (HTTP, facing the internet) and SignalR sessions.

`cogs/feed.py` only starts and stops the engine; the desk asks it for a call's state through
`bot.feed.call_state`.
"""

from .engine import FeedEngine

__all__ = ["FeedEngine"]
