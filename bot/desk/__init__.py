"""The desk: the writes a member can make, with their checks, limits and audit (see `desk.py`)."""

from .desk import Desk

__all__ = ["Desk"]
