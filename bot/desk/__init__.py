"""The desk: the writes a member can make, with their checks, limits and audit (see `desk.py`).

Contract: one desk per community, built by the composition root (`bot.app`); commands and cards
reach it through the community of the interaction's guild, never through the bot."""

from .desk import Desk

__all__ = ["Desk"]
