"""Delivery, a floor of its own: how what the bot shows in a channel reaches Discord, for the feed
(`bot.feed`) and the units (`bot.units`) alike (the audit log keeps its own queue, and takes only
the fault wording from here). It knows Discord and the channel, not what a message is
about.

- `outbox`: `ChannelWriter`, one per channel, whatever it shows: it asks its lanes (a feed's call
  posts, panic alerts, a unit board; each lane lives in its own room) for the next write, urgent
  ones first, and backs off per write and per channel; nothing waits on Discord under a lock;
- `writes`: every write bounded in time (`bounded`), and `Fault`, what a failed one means for its
  channel's writer;
- `faults`: what the bot needs in its channels, and the one wording of a Discord fault there;
- `pings`: who a message may ping (`NO_PINGS`, `pinging`).

Nothing is imported here, so each module may be imported alone.
"""
