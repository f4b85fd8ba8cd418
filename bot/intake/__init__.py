"""Intake, a room of its own: what Sonoran pushes, and which community it is for.

- `listener`: the push listener (HTTP, facing the internet: `allow_from`, eviction of connections
  that have not proved themselves, bytes counted as read, timeouts, overload answers); it checks a
  request's key, reads its events (`bot.sonoran.events`) and hands them on, answering 200 only
  once they are stored;
- `router`: `Intake`, which builds and starts the listener and resolves each request's path to the
  community it is for (`PushRoute`: the TOML mode's one community, or a path token in hosted mode);
- `keyscan`: a long body's key read from its first bytes;
- `websocket`: the opt-in SignalR sessions, whose events take the listener's road.

Nothing is imported here, so each module may be imported alone.
"""
