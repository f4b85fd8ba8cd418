"""Sonoran CAD client: knows HTTP and Sonoran, nothing of Discord."""

from .api import NewCall
from .client import SonoranClient
from .errors import (
    BadCredentials,
    BadReply,
    CadUnavailable,
    ConfigurationProblem,
    NotFound,
    OutcomeUnknown,
    PlanTooLow,
    RateLimited,
    RequestRejected,
    SonoranError,
    UnknownServer,
    WrongApiUrl,
)
from .models import (
    CallList,
    CallStatus,
    CallType,
    DispatchCall,
    EmergencyCall,
    Note,
    Origin,
    Plan,
    PlanInfo,
    Server,
    UnitStatus,
)

__all__ = [
    "BadCredentials",
    "BadReply",
    "CadUnavailable",
    "CallList",
    "CallStatus",
    "CallType",
    "ConfigurationProblem",
    "DispatchCall",
    "EmergencyCall",
    "NewCall",
    "NotFound",
    "Note",
    "Origin",
    "OutcomeUnknown",
    "Plan",
    "PlanInfo",
    "PlanTooLow",
    "RateLimited",
    "RequestRejected",
    "Server",
    "SonoranClient",
    "SonoranError",
    "UnitStatus",
    "UnknownServer",
    "WrongApiUrl",
]
