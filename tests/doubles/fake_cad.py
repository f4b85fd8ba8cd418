"""The tests' fake CAD is the sandbox CAD the demo runs (`bot/sandbox/cad.py`): one fake, not two."""

from bot.sandbox.cad import API_KEY, COMMUNITY_ID, V1_PLAN_NEEDED, FakeCad, Fault, Recorded, ServerCalls, not_linked

__all__ = ["API_KEY", "COMMUNITY_ID", "V1_PLAN_NEEDED", "FakeCad", "Fault", "Recorded", "ServerCalls", "not_linked"]
