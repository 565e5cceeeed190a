"""The ``cameras`` section of the agent's config: cameras, evidence, uploads, the gate list."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from decisions.plate_format import RegionChoice

DEFAULT_MODEL = Path(__file__).parent / "models" / "plate_detector.onnx"

CameraName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LineSettings(_Settings):
    """A counting line in frame fractions; crossing towards ``inside`` is "in"."""

    x1: float = Field(ge=0, le=1)
    y1: float = Field(ge=0, le=1)
    x2: float = Field(ge=0, le=1)
    y2: float = Field(ge=0, le=1)
    inside: Literal["left", "right"] = "left"


_Pixels = Annotated[int, Field(ge=0, le=16384)]
_Extent = Annotated[int, Field(ge=1, le=16384)]


class LabelSpotSettings(_Settings):
    lot: str = Field(min_length=1, max_length=128)
    box: tuple[_Pixels, _Pixels, _Extent, _Extent]  # x, y, w, h in pixels of the picture


class CameraSettings(_Settings):
    name: CameraName
    # rtsp://…, http://…, a video file, a folder, 0; or sim:HOST:PORT, frames with their
    # simulated capture time (edge/vision/pushed.py)
    source: str = Field(min_length=1)
    role: Literal["gate", "stack"] = "gate"
    region: RegionChoice = "auto"
    # Where the camera stands (ISO 3166 alpha-2, e.g. "ro"): its plate formats win when a read
    # also fits another country's ("0848SCF": Romanian DB 48 SCF, or Spanish as it stands).
    country: str | None = None
    line: LineSettings | None = None
    pace: bool = True  # play files at their own frame rate, as a live camera would deliver
    labels: list[LabelSpotSettings] = Field(default_factory=list)
    label_every_s: float = Field(default=30.0, gt=0)
    label_unreadable_after_s: float = Field(default=600.0, gt=0)
    blind_after_s: float = Field(default=10.0, gt=0)
    passage_gap_s: float = Field(default=2.0, gt=0)
    min_reads: int = Field(default=2, ge=1)
    # The second plate-proposal stage (a text detector where the plate detector saw nothing in
    # the motion), at most once per ``proposal_every_s`` of picture time; see proposals.py.
    # 0.5 s: about 110 ms of one core per run on top of the detector's 12-15 ms a moving frame
    # (0.4 s a second at 25 frames), so the core stays at about two thirds while a vehicle
    # passes, and a 3-second passage still gets six tries.
    plate_proposals: bool = True
    proposal_every_s: float = Field(default=0.5, gt=0)

    @field_validator("country")
    @classmethod
    def _known_country(cls, country: str | None) -> str | None:
        from decisions.plate_format import COUNTRIES

        if country is not None and country not in COUNTRIES:
            raise ValueError(f"no plate formats for {country!r}; known: "
                             f"{', '.join(sorted(COUNTRIES))}")
        return country

    @field_validator("source")
    @classmethod
    def _simulated_on_loopback(cls, source: str) -> str:
        from edge.vision.pushed import parse_pushed, pushed

        if pushed(source):
            parse_pushed(source)  # a ValueError names what is wrong with the address
        return source


class UploadSettings(_Settings):
    """Where evidence images go (``PUT {url}/api/v1/evidence/{sha256}``, see upload.py)."""

    url: str = Field(pattern=r"^https?://")
    api_key_file: Path  # the gateway's API key, one line
    interval_s: float = Field(default=5.0, gt=0)


class VisionSettings(_Settings):
    cameras: list[CameraSettings] = Field(min_length=1)
    evidence_dir: Path = Path("var/edge/evidence")
    upload: UploadSettings | None = None
    authorised_vehicles_file: Path | None = None
    model: Path = DEFAULT_MODEL
    threads: int = Field(default=1, ge=1, le=16)
    reconnect_max_s: float = Field(default=30.0, gt=0)
