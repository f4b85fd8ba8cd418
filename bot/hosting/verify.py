"""/setup cad's check against the CAD, before anything is kept: the key (`version`), the plan,
and the servers. Every outcome is one sentence for the admin, never with the key in it.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from ..messages import user_message
from ..preflight import plan_gaps
from ..services import sonoran_client
from ..sonoran import SonoranError
from ..sonoran.errors import (
    BadCredentials,
    BadReply,
    CadUnavailable,
    NotFound,
    PlanTooLow,
    RateLimited,
    WrongApiUrl,
)
from ..sonoran.models import PlanInfo, Server
from .plan import sonoran_settings

SONORAN_API_URL = "https://api.sonorancad.com"
WHERE_THE_KEY_IS = "Sonoran CAD > Admin > Advanced > API Key"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    sentence: str  # what is wrong, or what the plan lacks ("" when all is there)
    plan: PlanInfo | None = None
    servers: tuple[Server, ...] = ()


async def verify_cad(
    session: aiohttp.ClientSession, community_id: str, api_key: str, api_url: str, *, seconds: float = 10.0
) -> Verdict:
    """Asks the CAD at `api_url` for its version (the key), then its servers. A plan with neither
    911 calls nor call reads is refused: nothing of the bot would work on it."""
    settings = sonoran_settings(community_id, api_key, api_url).model_copy(update={"timeout_seconds": seconds})
    client = sonoran_client(session, settings, retry_backoff=0.2)
    where = settings.base_url
    try:
        plan = await client.get_version()
        servers = tuple(await client.get_servers())
    except BadCredentials:
        return Verdict(
            False,
            f"The CAD refused that API key for community {community_id}: copy both again from {WHERE_THE_KEY_IS} "
            "and run /setup cad once more.",
        )
    except (WrongApiUrl, BadReply, NotFound):
        return Verdict(
            False,
            f"{where} does not answer as Sonoran's API does: check the API URL (leave it empty for Sonoran's own).",
        )
    except CadUnavailable as error:
        return Verdict(False, f"The CAD at {where} did not answer ({error}): check the API URL, or try again later.")
    except PlanTooLow:
        return Verdict(
            False,
            f"Community {community_id}'s plan does not include the API (it needs Standard, and the feed and call "
            "lists need Plus): upgrade the Sonoran plan first.",
        )
    except RateLimited:
        return Verdict(False, "The CAD asks this key to slow down: try /setup cad again in a minute.")
    except SonoranError as error:
        return Verdict(False, f"The CAD at {where} refused: {user_message(error)}")
    gaps = plan_gaps(plan)
    if not plan.has_911_writes and not plan.has_call_reads:
        return Verdict(
            False,
            f"Community {community_id} is on the {plan.name} plan, which has none of what this bot does "
            f"(it leaves out {'; '.join(gaps)}): upgrade the Sonoran plan first.",
            plan,
        )
    if not servers:
        return Verdict(False, f"Community {community_id} has no CAD server: add one in the CAD first.", plan)
    lacking = f"The {plan.name} plan leaves out {'; '.join(gaps)}." if gaps else ""
    return Verdict(True, lacking, plan, servers)
