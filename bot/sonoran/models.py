"""What the CAD sends back, parsed leniently.

Sonoran's shapes drift between v1, v2 and push payloads: unknown
fields are kept, unknown enum values stay plain integers, `notes` may be an empty string, and
metaData values may be any JSON type. Every number is read by `.numbers` (an id that cannot be read
costs its record, a code that cannot be read becomes UNKNOWN). Nothing in here may crash on a shape
we have not seen.
"""

from __future__ import annotations

import enum
import logging
from typing import Annotated, Any, TypeAlias, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from ..statechanges import Once
from .numbers import UNKNOWN, Code, Id, OptionalCode, OptionalId, ids, loads, read_id

log = logging.getLogger(__name__)

ServerId: TypeAlias = int  # a CAD server (one per game server) of the community: Sonoran's serverId
CallId: TypeAlias = int  # a call's number on its CAD server; 911 calls and dispatch calls count apart

ACCOUNT_REMOVED = 3  # ACCOUNT_STATUS values that take every right away
ACCOUNT_BANNED = 4


class _LenientEnum(enum.IntEnum):
    @classmethod
    def label(cls, value: int) -> str:
        if value == UNKNOWN:
            return "Unknown"
        try:
            return cls(value).name.replace("_", " ").title()
        except ValueError:
            return f"#{value}"


class CallStatus(_LenientEnum):
    PENDING = 0
    ACTIVE = 1
    CLOSED = 2


class Origin(_LenientEnum):
    # The 4-value table (v1 docs, v2 create page, Sonoran.js); the 2-value table on the v2
    # get-calls page conflicts with it, so unknown values just render as numbers.
    CALLER = 0
    RADIO_DISPATCH = 1
    OBSERVED = 2
    WALK_UP = 3


class UnitStatus(_LenientEnum):
    UNAVAILABLE = 0
    BUSY = 1
    AVAILABLE = 2
    ENROUTE = 3
    ON_SCENE = 4
    OFFLINE = 100


class CallType(enum.IntEnum):
    DISPATCH = 0
    EMERGENCY = 1
    ALL = 100


class Plan(_LenientEnum):
    FREE = 0
    STARTER = 1
    STANDARD = 2
    PLUS = 3
    PRO = 4
    SONORAN_ONE = 6


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _flag(default: bool) -> Any:
    def read(value: Any) -> bool:
        return value if isinstance(value, bool) else default

    return read


# Field types that accept whatever the CAD sends: None or numbers where text is expected, junk
# where a number, a flag or a map is expected. Numbers are read by `.numbers` (Id, Code, ...).
Text = Annotated[str, BeforeValidator(_text)]
OptionalText = Annotated[str | None, BeforeValidator(lambda value: None if value is None else _text(value))]
Emergency = Annotated[bool, BeforeValidator(_flag(True))]  # null or junk: treated as an emergency
MetaData = Annotated[dict[str, Any], BeforeValidator(lambda value: value if isinstance(value, dict) else {})]


class Note(_Lenient):
    time: Text = ""
    label: Text = ""
    type: Text = "text"
    content: Text = ""


class EmergencyCall(_Lenient):
    call_id: Id = Field(alias="callId")
    is_emergency: Emergency = Field(True, alias="isEmergency")
    caller: Text = ""
    location: Text = ""
    description: Text = ""
    metadata: MetaData = Field(default_factory=dict, alias="metaData")
    updated: OptionalText = None


MAX_UNITS_ON_CALL = 100  # unit ids a dispatch call is read with (its card shows what fits in 1,024 characters)


class DispatchCall(_Lenient):
    call_id: Id = Field(alias="callId")
    origin: Code = 0
    status: Code = CallStatus.PENDING
    priority: Code = 0
    block: Text = ""
    address: Text = ""
    postal: Text = ""
    title: Text = ""
    code: Text = ""
    primary: OptionalId = None
    description: Text = ""
    notes: list[Note] = Field(default_factory=list)
    idents: list[int] = Field(default_factory=list)
    metadata: MetaData = Field(default_factory=dict, alias="metaData")
    updated: OptionalText = None

    @field_validator("notes", mode="before")
    @classmethod
    def _notes(cls, value: Any) -> list[Any]:
        # Push payloads send "" for no notes; a single object has been seen as well; a note that
        # is not an object is left out by itself.
        if isinstance(value, dict):
            return [value]
        return [note for note in value if isinstance(note, dict)] if isinstance(value, list) else []

    @field_validator("idents", mode="before")
    @classmethod
    def _idents(cls, value: Any) -> list[int]:
        # an entry that is no id is left out by itself; a call names a few units, and a list of
        # 150,000 would make every render of its card name each of them
        return ids(value, MAX_UNITS_ON_CALL)

    @property
    def origin_911(self) -> int | None:
        """The emergency call this dispatch call was created from, when the CAD says so."""
        return read_id(self.metadata.get("origin911"))


class CallList(BaseModel):
    """One GET_CALLS answer: every kind of call on one CAD server."""

    model_config = ConfigDict(frozen=True)

    server_id: int
    active: list[DispatchCall] = Field(default_factory=list)
    calls_911: list[EmergencyCall] = Field(default_factory=list)  # the 911 queue: emergency and civil calls
    closed: list[DispatchCall] = Field(default_factory=list)
    closed_total: int | None = None  # v2 only (ClosedCallCount)

    @classmethod
    def from_json(cls, server_id: int, body: bytes, memo: CallMemo | None = None) -> CallList:
        """The reply's bytes as a CallList. `memo` holds each call's raw object and model from the
        last reply: a call whose object is unchanged keeps its model (a dict comparison, in C), so
        only new and changed calls are validated. The memo is updated in place."""
        try:
            payload = loads(body)
        except ValueError:
            raise ValueError("the reply is not JSON") from None
        return cls.from_payload(server_id, payload, memo)

    @classmethod
    def from_payload(cls, server_id: int, payload: Any, memo: CallMemo | None = None) -> CallList:
        """Accept the v1 (`activeCalls`) and v2 (`ActiveCalls`) wrappers alike."""
        if not isinstance(payload, dict):
            raise ValueError(f"expected a JSON object, got {type(payload).__name__}")
        wrapper = {str(key).lower(): value for key, value in payload.items()}
        if not {"activecalls", "emergencycalls", "closedcalls"} & wrapper.keys():
            # `{"message": "upstream busy"}`, `{}`: read as "no calls", it would end every open post
            raise ValueError(f"no call lists in the reply (keys: {', '.join(sorted(wrapper)[:5]) or 'none'})")
        last: CallMemo = memo if memo is not None else {}
        fresh: CallMemo = {}

        def parse(key: str, model: type[_Call]) -> list[Any]:
            value = wrapper.get(key)
            if value is None:
                return []
            if not isinstance(value, list):
                raise ValueError(f"{key} is not a list")
            out = []
            recall = last.get
            for item in value:
                try:
                    slot = (key, item["callId"])
                    known = recall(slot)
                except (TypeError, KeyError):  # not an object, no id, or an id that is a list
                    continue
                if known is not None and known[0] == item:
                    call = known[1]
                else:
                    try:
                        call = model.model_validate(item)
                    except UNREADABLE as error:
                        left_out(f"CAD server {server_id}", key, slot[1], error)  # one bad call costs that call only
                        continue
                fresh[slot] = (item, call)
                out.append(call)
            return out

        total = wrapper.get("closedcallcount")
        calls = cls.model_construct(
            server_id=server_id,
            active=parse("activecalls", DispatchCall),
            calls_911=parse("emergencycalls", EmergencyCall),
            closed=parse("closedcalls", DispatchCall),
            closed_total=read_id(total),
        )
        if memo is not None:
            memo.clear()
            memo.update(fresh)
        return calls


_left_out_logged = Once()
# What reading one record may raise: it costs that record (ArithmeticError too, should a number
# ever be read outside `.numbers`).
UNREADABLE = (ValidationError, ValueError, TypeError, ArithmeticError, RecursionError)


def left_out(where: str, key: str, call_id: Any, error: Exception) -> None:
    """Logs a call (or unit) the CAD sent that cannot be read, once per entry (not once per poll).
    `where`: "CAD server 1" for a reply, "push" for an event."""
    slot = (where, key, repr(call_id)[:40])
    if not _left_out_logged.first(slot):
        return
    reason = error.errors()[0].get("msg", "") if isinstance(error, ValidationError) and error.errors() else error
    log.warning("%s: an entry of %s (id %s) cannot be read and is left out: %s", *slot, reason)


_Call = TypeVar("_Call", EmergencyCall, DispatchCall)
CallMemo: TypeAlias = dict[tuple[str, Any], tuple[dict[str, Any], Any]]


class UnitInfo(_Lenient):
    """A unit's `data`: who it is (all text, whatever the CAD sends)."""

    unit_num: Text = Field("", alias="unitNum")
    name: Text = ""
    department: Text = ""
    subdivision: Text = ""
    district: Text = ""
    rank: Text = ""
    group: Text = ""


class Unit(_Lenient):
    """A unit identifier on duty (`GET_ACTIVE_UNITS`, v2 `GET .../units`, the unit push events).
    `status` is UNIT_STATUS (communities relabel it); `data` is who it is."""

    id: Id  # the identifier id (`identId`), an integer SQLite can store, as call ids are
    status: Code = UnitStatus.UNAVAILABLE
    is_panic: Annotated[bool, BeforeValidator(_flag(False))] = Field(False, alias="isPanic")
    location: Text = ""
    aop: Text = ""
    is_dispatch: Annotated[bool, BeforeValidator(_flag(False))] = Field(False, alias="isDispatch")
    data: UnitInfo = Field(default_factory=lambda: UnitInfo())

    @field_validator("data", mode="before")
    @classmethod
    def _data(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else {}


UNITS_PAGE = 100  # units per request: Sonoran's default and maximum `limit`


class UnitPage(list[Unit]):
    """A page of the units list: the units that could be read, and `rows`, how many the CAD sent.
    Whether it was the last page is decided by the rows: a row that cannot be read is one unit
    left out, not the end of the list."""

    def __init__(self, units: list[Unit] | None = None, *, rows: int = 0) -> None:
        super().__init__(units or [])
        self.rows = max(rows, len(self))


def units_from_payload(server_id: int, payload: Any) -> UnitPage:
    """A units reply: a plain array (the docs) or a `{units: [...]}` wrapper in any case (seen in
    the FiveM code). A unit that cannot be read is left out by itself (logged once)."""
    if isinstance(payload, dict):
        payload = next((v for k, v in payload.items() if str(k).lower() == "units"), None)
    if not isinstance(payload, list):
        raise ValueError("no unit list")
    units = []
    for item in payload:
        try:
            units.append(Unit.model_validate(item))
        except UNREADABLE as error:
            ident = item.get("id") if isinstance(item, dict) else None
            left_out(f"CAD server {server_id}", "units", ident, error)
    return UnitPage(units, rows=len(payload))


class PlanInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    level: int
    name: str

    @property
    def has_call_reads(self) -> bool:
        """GET_CALLS, notes and closing calls need Plus or higher."""
        return self.level >= Plan.PLUS or self.name.upper() in {"PLUS", "PRO", "SONORAN ONE", "ONE"}

    @property
    def has_911_writes(self) -> bool:
        return self.level >= Plan.STANDARD or self.has_call_reads


class Account(_Lenient):
    """A CAD account (v2 `GET /general/accounts/account`); `permissions` holds some 43 booleans."""

    uuid: Text = ""
    username: Text = ""
    status: OptionalCode = None  # ACCOUNT_STATUS: 0 PENDING, 1 VALIDATED, 2 EXPIRED, 3 REMOVED, 4 BANNED
    permissions: dict[str, Any] = Field(default_factory=dict)

    @property
    def is_barred(self) -> bool:
        """Removed from the community, or banned: no rights, whatever `permissions` still says."""
        return self.status in (ACCOUNT_REMOVED, ACCOUNT_BANNED)

    @property
    def can_dispatch(self) -> bool:
        if self.is_barred:
            return False
        return self.permissions.get("dispatch") is True or self.permissions.get("admin") is True


class Server(_Lenient):
    id: Id
    name: Text = ""
