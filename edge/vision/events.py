"""What a camera's decisions become: messages for the outbox, evidence images beside them.

- a vehicle passage -> ``plate_read`` with the best crop and a downscaled frame as evidence;
  leaving (direction ``out``) without authorisation -> ``theft.unauthorized_vehicle`` alert;
- a label read or read differently -> ``label_read``; unreadable too long ->
  ``damage.label_unreadable`` alert (cleared when read again);
- blind (dark, covered, frozen) -> ``tamper.camera_blocked`` alert (cleared when seeing again).

Evidence images are stored beside the outbox (``evidence_dir``); events reference them by hash.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contract import MessageType
from contract.messages import EvidenceRef, LabelReadBody, PlateReadBody
from decisions.alert_text import alert_text
from decisions.alert_types import AlertType
from decisions.vehicles import ALERT_TYPE as UNAUTHORISED
from decisions.vehicles import AuthorisedVehicles, vehicle_authorised
from edge.pipelines import EdgeContext
from edge.vision.evidence import EvidenceStore
from edge.vision.label_watch import ALERT_TYPE as LABEL_UNREADABLE
from edge.vision.passages import Passage
from edge.vision.settings import VisionSettings
from edge.vision.tamper import BlindnessChange

log = logging.getLogger(__name__)

CAMERA_BLOCKED = AlertType.CAMERA_BLOCKED


@dataclass
class VisionOutput:
    """Where a camera's events go, and what judging them needs (the gate list)."""

    settings: VisionSettings
    ctx: EdgeContext
    evidence: EvidenceStore
    authorised: AuthorisedVehicles | None


def _observed(at_us: int) -> datetime:
    return datetime.fromtimestamp(at_us / 1_000_000, UTC)


def _store(shared: VisionOutput, images: list[tuple[Any, str]]) -> list[EvidenceRef]:
    refs: list[EvidenceRef] = []
    for image, kind in images:
        try:
            refs.append(shared.evidence.put_image(image, kind))  # type: ignore[arg-type]
        except (OSError, ValueError) as err:
            # The event matters more than its picture: send it without, say so in the log.
            log.error("evidence image not stored", extra={"kind": kind, "error": str(err)})
    return refs


def emit_passage(shared: VisionOutput, camera: str, passage: Passage) -> None:
    evidence = passage.best.evidence
    refs = _store(shared, [(evidence.crop, "plate_crop"), (evidence.frame, "frame")]) if (
        evidence is not None) else []
    body = PlateReadBody(
        camera=camera, plate=passage.plate, region=passage.region,
        plate_format=passage.plate_format, confidence_pct=round(passage.confidence * 100),
        reads=passage.reads, direction=passage.direction, first_seen_us=passage.first_seen_us,
        last_seen_us=passage.last_seen_us, box=passage.best.box, evidence=refs,
    )
    shared.ctx.emit(MessageType.PLATE_READ, body, observed_at=_observed(passage.best.at_us))
    if passage.direction != "out" or shared.authorised is None:
        return
    verdict = vehicle_authorised(passage.plate, _observed(passage.last_seen_us),
                                 gate_list=shared.authorised)
    if verdict.authorised:
        return
    text = alert_text("unauthorised_vehicle.raise", reason=verdict.reason, camera=camera,
                      plate=passage.plate)
    alert = text.alert(
        action="raise", alert_type=UNAUTHORISED, subject=f"vehicle:{passage.plate}",
        severity="major",
        evidence={"camera": camera, "plate": passage.plate, "images": [r.sha256 for r in refs],
                  "last_seen_us": passage.last_seen_us},
    )
    shared.ctx.emit(MessageType.ALERT, alert, observed_at=_observed(passage.last_seen_us))


def emit_blindness(shared: VisionOutput, camera: str, change: BlindnessChange, at_us: int) -> None:
    text = (alert_text("camera_blocked.raise", camera=camera, cause=change.cause or "unknown",
                       since=f"{_observed(change.since_us):%H:%M:%S}")
            if change.action == "raise" else alert_text("camera_blocked.clear", camera=camera))
    alert = text.alert(
        action=change.action, alert_type=CAMERA_BLOCKED, subject=f"camera:{camera}",
        severity="major",
        evidence={"cause": change.cause, "brightness": round(change.stats.brightness, 1),
                  "detail": round(change.stats.detail, 2), "change": round(change.stats.change, 3)},
    )
    shared.ctx.emit(MessageType.ALERT, alert, observed_at=_observed(at_us))


def emit_outcome(shared: VisionOutput, camera: str, outcome: Any, at_us: int) -> None:
    if outcome.blindness is not None:
        emit_blindness(shared, camera, outcome.blindness, at_us)
    for passage in getattr(outcome, "passages", []):
        emit_passage(shared, camera, passage)
    for reading in getattr(outcome, "readings", []):
        # Text read by OCR in the background is dated by the frame its crop came from.
        seen_us = reading.at_us if reading.at_us is not None else at_us
        refs = _store(shared, [(reading.crop, "label_crop")])
        shared.ctx.emit(MessageType.LABEL_READ, LabelReadBody(
            camera=camera, lot=reading.lot, symbology=reading.label.symbology,
            text=reading.label.text[:512], gs1=reading.label.gs1, evidence=refs,
        ), observed_at=_observed(seen_us))
    for verdict in getattr(outcome, "verdicts", []):
        minutes = verdict.unread_for_us / 60e6
        text = (alert_text("label_unreadable.raise", lot=verdict.lot, camera=camera,
                           minutes=f"{minutes:.0f}")
                if verdict.action == "raise"
                else alert_text("label_unreadable.clear", lot=verdict.lot))
        shared.ctx.emit(MessageType.ALERT, text.alert(
            action=verdict.action, alert_type=LABEL_UNREADABLE, subject=f"lot:{verdict.lot}",
            severity="minor", lot=verdict.lot,
            evidence={"camera": camera, "last_read_us": verdict.last_read_us},
        ), observed_at=_observed(at_us))


def emit_finished(shared: VisionOutput, camera: str, watch: Any) -> None:
    """Passages still open when the picture stops are decided with what was seen."""
    if watch is not None and hasattr(watch, "finish"):
        for passage in watch.finish():
            emit_passage(shared, camera, passage)
