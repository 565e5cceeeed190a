"""What the API accepts and returns (not the database tables)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from contract import load_public_key, validate_identifier
from contract.bounds import TIME_US_MAX, TIME_US_MIN


class _In(BaseModel):
    # NaN and infinities are refused: JSON parsers accept them, PostgreSQL columns do not.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


_EARLIEST = datetime.fromtimestamp(TIME_US_MIN / 1e6, UTC)
_LATEST = datetime.fromtimestamp(TIME_US_MAX / 1e6, UTC)


def _in_range(value: datetime) -> datetime:
    if not _EARLIEST <= value <= _LATEST:
        raise ValueError(f"must lie between {_EARLIEST.isoformat()} and {_LATEST.isoformat()}")
    return value


ApiTime = Annotated[AwareDatetime, AfterValidator(_in_range)]
"""A time a client sends: with its UTC offset (a naive one is ambiguous), 2000 to 2100."""


Identifier = Annotated[str, AfterValidator(lambda v: validate_identifier(v, "id"))]


class OperatorCreate(_In):
    id: Identifier
    name: str = Field(min_length=1, max_length=200)

class FinancierCreate(OperatorCreate):
    pass


class SiteCreate(_In):
    id: Identifier
    operator_id: str
    name: str = Field(min_length=1, max_length=200)
    timezone: str = "UTC"

class SiteOut(BaseModel):
    id: str
    operator_id: str
    name: str
    timezone: str
    created_at: datetime


class GatewayRegister(_In):
    id: Identifier
    site_id: str
    public_key: str = Field(description="base64 of the raw 32-byte Ed25519 public key")
    mqtt_username: str | None = None

    @field_validator("public_key")
    @classmethod
    def _key(cls, value: str) -> str:
        load_public_key(value)
        return value


class GatewayOut(BaseModel):
    id: str
    site_id: str
    public_key: str
    mqtt_username: str | None
    created_at: datetime
    last_seen_at: datetime | None
    last_seq: int | None
    online: bool
    status_changed_at: datetime | None
    revoked_at: datetime | None = None


class LotCreate(_In):
    id: Identifier
    site_id: str
    name: str = Field(min_length=1, max_length=200)
    depositor: str = ""
    goods_kind: str = ""
    pieces: int = Field(0, ge=0)
    zone: str | None = None
    financier_id: str | None = None
    absence_window_s: float = Field(30.0, gt=0, le=30 * 86_400)
    epcs: list[str] = Field(default_factory=list, max_length=100_000)

    @field_validator("epcs")
    @classmethod
    def _hex(cls, epcs: list[str]) -> list[str]:
        for epc in epcs:
            if not epc or len(epc) % 4 or any(c not in "0123456789abcdefABCDEF" for c in epc):
                raise ValueError(f"EPC {epc!r} is not hex of whole 16-bit words")
        if len({e.upper() for e in epcs}) != len(epcs):
            raise ValueError("EPCs must be unique")
        return epcs


class LotOut(BaseModel):
    id: str
    site_id: str
    name: str
    depositor: str
    goods_kind: str
    pieces: int
    zone: str | None
    financier_id: str | None
    absence_window_s: float
    created_at: datetime
    tag_count: int


class AlertAction(_In):
    comment: str = Field("", max_length=2000)
