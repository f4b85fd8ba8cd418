"""Name and plate lookups from Discord (`/lookup`): who may, what is sent, what is shown.

- `query.py`: the member's input checked and trimmed before anything is sent (Sonoran punishes
  malformed requests by denying the whole community's API calls for a while).
- `render.py`: pure; records as embed pages, what matters on a stop first, hidden and
  supervisor-only fields left out.
- `guard.py`: the per-member cooldown and hourly cap, the 60 s answer cache (never shared between
  members with different rights) and the pause after repeated 400s.
- `errors.py`: the refusals (data only; their sentences are in `bot/messages.py`).
- `service.py`: `Lookups`, the one road from a member's command to the CAD and back, audited.

Contract: one `Lookups` per community (its limits, cache and pause are that community's), built by
the composition root (`bot.app`) and found through the interaction's community.

Nothing is imported here, so that `bot.messages` can import the refusals without a circle.
"""
