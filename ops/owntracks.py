"""The OwnTracks tracker adapter, the same on the gateway and in the cloud.

Trackers publish JSON on ``owntracks/<user>/<device>`` to a broker (the gateway's own, or the
cloud's); the feed yields batches of `TrackerReport`. A message that is not a usable location
goes to ``on_refused(reason, detail)`` (the gateway counts it, the cloud logs it) and is
otherwise skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from contract.owntracks import (
    TOPIC_FILTER,
    LocationRefused,
    NotALocation,
    TrackerReport,
    parse_location,
)
from ops.mqtt import DeviceBroker, DeviceMessages
from ops.supervised import HealthCallback

Refused = Callable[[str, str], None]  # reason code, "topic: detail"


@dataclass(frozen=True)
class OwnTracksConfig:
    url: str
    client_id: str
    topic: str = TOPIC_FILTER


def _ignore(_reason: str, _detail: str) -> None:
    return None


class OwnTracksFeed(DeviceMessages[TrackerReport]):
    def __init__(
        self, config: OwnTracksConfig, on_health: HealthCallback | None = None,
        *, on_refused: Refused = _ignore,
    ) -> None:
        def reports(topic: str, payload: bytes) -> list[TrackerReport]:
            try:
                return [parse_location(topic, payload)]
            except NotALocation as kind:  # lwt, transition, card: valid, but carry no fix
                on_refused("not_a_location", f"{topic[:80]}: {kind}")
            except LocationRefused as err:
                on_refused(err.reason, f"{topic[:80]}: {err}")
            return []

        super().__init__(
            DeviceBroker(config.url, (config.topic,), config.client_id), on_health, reports
        )
