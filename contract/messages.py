"""Message types and their bodies: what each envelope ``type`` carries, and on which channel.

Bodies are pydantic models with ``extra="forbid"``: a field the cloud does not know is an
error that lands in the dead-letter table, not something silently ignored. Values are
integers and strings where possible (RSSI in centi-dBm, times in microseconds since the Unix
epoch) so that any language reproduces the canonical bytes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from contract.bounds import INT32_MAX, INT64_MAX, TimeUs
from contract.topics import Channel


class MessageType(StrEnum):
    TAG_READS = "tag_reads"
    PRESENCE_CHANGE = "presence_change"
    LOT_COUNT = "lot_count"
    ALERT = "alert"
    GATEWAY_STATUS = "gateway_status"
    AGENT_HEALTH = "agent_health"
    PLATE_READ = "plate_read"
    LABEL_READ = "label_read"
    TAG_ZONE = "tag_zone"
    UNEXPECTED_TAGS = "unexpected_tags"
    TRACKER_POSITIONS = "tracker_positions"
    GEOFENCE_ENTER = "geofence_enter"
    GEOFENCE_EXIT = "geofence_exit"
    GEOFENCE_DWELL = "geofence_dwell"
    GEOFENCES_APPLIED = "geofences_applied"
    SENSOR_READINGS = "sensor_readings"


EpcHex = Annotated[
    str, StringConstraints(pattern=r"^[0-9A-F]{4,124}$", min_length=4, max_length=124)
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
# Every integer has a range that fits its column (bigint or int): no sender picks an overflow.
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]
Int32 = Annotated[int, Field(ge=-INT32_MAX, le=INT32_MAX)]
Rssi = Annotated[int, Field(ge=-20_000, le=20_000)]  # centi-dBm: -200 .. +200 dBm


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class TagObservation:
    """One read of one tag by one reader antenna: what every RFID adapter yields."""

    epc: str  # upper-case hex of the EPC bank
    antenna: int
    rssi_cdbm: int | None  # peak RSSI in centi-dBm (-5550 is -55.5 dBm); None if not reported
    observed_at_us: int  # reader time, microseconds since the Unix epoch (UTC)
    reader_id: str

    def as_row(self) -> tuple[str, int, int | None, int]:
        return (self.epc, self.antenna, self.rssi_cdbm, self.observed_at_us)


# One read on the wire: [epc_hex, antenna, rssi_cdbm | null, observed_at_us]
TagReadRow = tuple[EpcHex, Annotated[int, Field(ge=0, le=65535)], Rssi | None, TimeUs]


class TagReadsBody(_Body):
    """A batch of raw tag observations from one reader (telemetry/rfid)."""

    reader: Name
    reads: list[TagReadRow] = Field(min_length=1, max_length=10_000)


PresenceState = Literal["present", "missing", "unknown"]


class PresenceChangeBody(_Body):
    """A tag of a lot changed presence state at the edge (events)."""

    lot: Name
    epc: EpcHex
    state: PresenceState
    previous: PresenceState | None
    last_seen_us: TimeUs | None
    reader: Name | None = None


class LotCountBody(_Body):
    """How many of a lot's expected tags are present, missing or unknown (telemetry/lot)."""

    lot: Name
    expected: Count
    present: Count
    missing: Count
    unknown: Count


Severity = Literal["critical", "major", "minor", "warning"]


class AlertBody(_Body):
    """An alert raised (or cleared) by the gateway's local rules (events).

    ``subject`` names what the alert is about (``lot:LOT-7``, ``reader:dock-1``); the cloud
    keeps one active alert per ``(alert_type, subject)``.
    """

    action: Literal["raise", "clear"]
    alert_type: Annotated[str, StringConstraints(pattern=r"^[a-z]+\.[a-z_]+$", max_length=64)]
    subject: Name
    severity: Severity
    lot: Name | None = None
    explanation: Annotated[str, StringConstraints(max_length=2000)]
    evidence: dict[str, Any] = Field(default_factory=dict)


class GatewayStatusBody(_Body):
    """Retained on ``status``; the last will carries ``offline``."""

    state: Literal["online", "offline"]
    agent_version: Name
    session_started_us: TimeUs


class AgentHealthBody(_Body):
    """Periodic self-report of the edge agent (telemetry/agent)."""

    outbox_depth: Count
    outbox_bytes: Count
    dropped_telemetry: Count
    reconnects: Count
    published: Count
    confirmed: Count = 0  # rows the cloud confirmed stored (cmd/stored)
    awaiting_confirmation: Count = 0  # acked by the broker, not yet confirmed


class EvidenceRef(_Body):
    """An image stored beside an event at the edge and uploaded by content hash."""

    kind: Literal["plate_crop", "frame", "label_crop"]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    content_type: Literal["image/jpeg"] = "image/jpeg"
    bytes: int = Field(ge=1, le=INT32_MAX)
    width: int = Field(ge=1, le=INT32_MAX)
    height: int = Field(ge=1, le=INT32_MAX)


class PlateReadBody(_Body):
    """One vehicle passage at a camera, its plate decided by voting over reads (events)."""

    camera: Name
    plate: Annotated[str, StringConstraints(min_length=2, max_length=16)]
    region: Literal["cn", "eu", "us", "other"]  # other: a plate of an unlisted country
    plate_format: Name
    confidence_pct: int = Field(ge=0, le=100)
    reads: int = Field(ge=1, le=INT32_MAX)
    direction: Literal["in", "out"] | None = None
    first_seen_us: TimeUs
    last_seen_us: TimeUs
    box: tuple[Int32, Int32, Int32, Int32]  # x, y, w, h of the best crop in its frame
    evidence: list[EvidenceRef] = Field(default_factory=list, max_length=8)


class LabelReadBody(_Body):
    """A pallet label read (or read differently) by a stack camera (events)."""

    camera: Name
    lot: Name | None = None
    symbology: Name  # zxing-cpp format name, or "text" when read by OCR
    text: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    # application identifier -> value
    gs1: dict[Annotated[str, StringConstraints(max_length=8)], Name] | None = Field(
        None, max_length=32)
    evidence: list[EvidenceRef] = Field(default_factory=list, max_length=8)


class TagZoneBody(_Body):
    """A tag moved into a zone (dock door, bay) decided from antenna and RSSI (events)."""

    epc: EpcHex
    zone: Name
    previous: Name | None
    reader: Name
    rssi_cdbm: Rssi
    lot: Name | None = None


class UnexpectedTag(_Body):
    epc: EpcHex
    reads: int = Field(ge=1, le=INT64_MAX)
    first_seen_us: TimeUs
    last_seen_us: TimeUs
    reader: Name


class UnexpectedTagsBody(_Body):
    """Tags read that belong to no lot: totals, and the ones not reported before
    (telemetry/unexpected)."""

    total_tags: Count
    total_reads: Count
    new: list[UnexpectedTag] = Field(default_factory=list, max_length=1000)


# One GPS fix: [fix_time_us, lon_e7, lat_e7, accuracy_cm | null, battery_pct | null]
# (degrees x 1e7 as integers: about 1 cm, and the same bytes in every language).
FixRow = tuple[
    TimeUs,
    Annotated[int, Field(ge=-1_800_000_000, le=1_800_000_000)],
    Annotated[int, Field(ge=-900_000_000, le=900_000_000)],
    Annotated[int, Field(ge=0, le=INT32_MAX)] | None,
    Annotated[int, Field(ge=0, le=100)] | None,
]


class TrackerPositionsBody(_Body):
    """Fixes of one tracker as received, in fix-time order (telemetry/position)."""

    tracker: Name
    source: Literal["owntracks", "jt808", "sim"]
    fixes: list[FixRow] = Field(min_length=1, max_length=5_000)
    # reason -> count since last batch
    rejected: dict[Name, Count] = Field(default_factory=dict, max_length=64)


class GeofenceEventBody(_Body):
    """A tracker entered, left or dwelt in a fence, with the fix that decided it (events)."""

    tracker: Name
    fence: Name
    fence_kind: Name
    lots: list[Name] = Field(default_factory=list, max_length=1000)
    fix: FixRow
    run_started_us: TimeUs
    run_fixes: Count
    fences_version: Count


class GeofencesAppliedBody(_Body):
    """The gateway's answer to cmd/geofences: the version it now runs, or why it refused one."""

    version: Count
    state: Literal["applied", "refused"]
    fences: Count
    reason: Annotated[str, StringConstraints(max_length=2000)] | None = None


# One reading: [observed_at_us, value x 1000 (milli-units)]
ReadingRow = tuple[TimeUs, Annotated[int, Field(ge=-INT64_MAX, le=INT64_MAX)]]


class SensorReadingsBody(_Body):
    """Readings of one quantity from one sensor (telemetry/sensor)."""

    sensor: Name
    quantity: Name  # temperature, humidity, shock, tilt, door, seal, weight
    unit: Annotated[str, StringConstraints(max_length=16)]
    lot: Name | None = None
    readings: list[ReadingRow] = Field(min_length=1, max_length=10_000)


BODY_MODELS: dict[MessageType, type[_Body]] = {
    MessageType.TAG_READS: TagReadsBody,
    MessageType.PRESENCE_CHANGE: PresenceChangeBody,
    MessageType.LOT_COUNT: LotCountBody,
    MessageType.ALERT: AlertBody,
    MessageType.GATEWAY_STATUS: GatewayStatusBody,
    MessageType.AGENT_HEALTH: AgentHealthBody,
    MessageType.PLATE_READ: PlateReadBody,
    MessageType.LABEL_READ: LabelReadBody,
    MessageType.TAG_ZONE: TagZoneBody,
    MessageType.UNEXPECTED_TAGS: UnexpectedTagsBody,
    MessageType.TRACKER_POSITIONS: TrackerPositionsBody,
    MessageType.GEOFENCE_ENTER: GeofenceEventBody,
    MessageType.GEOFENCE_EXIT: GeofenceEventBody,
    MessageType.GEOFENCE_DWELL: GeofenceEventBody,
    MessageType.GEOFENCES_APPLIED: GeofencesAppliedBody,
    MessageType.SENSOR_READINGS: SensorReadingsBody,
}

# Where each type is published: (channel, telemetry kind or None).
CHANNEL_OF: dict[MessageType, tuple[Channel, str | None]] = {
    MessageType.TAG_READS: (Channel.TELEMETRY, "rfid"),
    MessageType.PRESENCE_CHANGE: (Channel.EVENTS, None),
    MessageType.LOT_COUNT: (Channel.TELEMETRY, "lot"),
    MessageType.ALERT: (Channel.EVENTS, None),
    MessageType.GATEWAY_STATUS: (Channel.STATUS, None),
    MessageType.AGENT_HEALTH: (Channel.TELEMETRY, "agent"),
    MessageType.PLATE_READ: (Channel.EVENTS, None),
    MessageType.LABEL_READ: (Channel.EVENTS, None),
    MessageType.TAG_ZONE: (Channel.EVENTS, None),
    MessageType.UNEXPECTED_TAGS: (Channel.TELEMETRY, "unexpected"),
    MessageType.TRACKER_POSITIONS: (Channel.TELEMETRY, "position"),
    MessageType.GEOFENCE_ENTER: (Channel.EVENTS, None),
    MessageType.GEOFENCE_EXIT: (Channel.EVENTS, None),
    MessageType.GEOFENCE_DWELL: (Channel.EVENTS, None),
    MessageType.GEOFENCES_APPLIED: (Channel.EVENTS, None),
    MessageType.SENSOR_READINGS: (Channel.TELEMETRY, "sensor"),
}

_ADAPTERS: dict[MessageType, TypeAdapter[Any]] = {t: TypeAdapter(m) for t, m in BODY_MODELS.items()}


def validate_body(msg_type: str, body: dict[str, Any]) -> BaseModel:
    """Validate a body against its type's schema; ValueError says what is wrong."""
    try:
        known = MessageType(msg_type)
    except ValueError:
        raise ValueError(f"unknown message type {msg_type!r}") from None
    try:
        return _ADAPTERS[known].validate_python(body)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in err.errors()[:5]
        )
        raise ValueError(f"{known} body invalid: {problems}") from None
