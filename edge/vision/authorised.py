"""The gate list at the edge: loaded from its file at start, replaced by a newer one from the cloud.

The list arrives on ``cmd/authorised_vehicles`` (an ``AuthorisedVehicles`` JSON body); a newer
version replaces the file named in the config, so it survives a restart.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from decisions.vehicles import AuthorisedVehicles
from edge.vision.events import VisionOutput

log = logging.getLogger(__name__)

AUTHORISED_COMMAND = "authorised_vehicles"


def load_authorised(path: Path | None) -> AuthorisedVehicles | None:
    if path is None or not path.exists():
        return None
    try:
        return AuthorisedVehicles.load(path)
    except (OSError, ValidationError) as err:
        log.error("stored authorised vehicles list unreadable; waiting for the cloud's",
                  extra={"path": str(path), "error": str(err)[:500]})
        return None


def authorised_vehicles_handler(shared: VisionOutput) -> Callable[[bytes], None]:
    def handle(payload: bytes) -> None:
        try:
            incoming = AuthorisedVehicles.model_validate_json(payload)
        except ValidationError as err:
            log.error("authorised vehicles list rejected", extra={"error": str(err)[:500]})
            return
        if shared.authorised is not None and incoming.version <= shared.authorised.version:
            log.info("authorised vehicles list not newer; kept",
                     extra={"have": shared.authorised.version, "got": incoming.version})
            return
        path = shared.settings.authorised_vehicles_file
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(incoming.model_dump_json().encode())
            os.replace(tmp, path)
        shared.authorised = incoming
        log.info("authorised vehicles list applied",
                 extra={"version": incoming.version, "vehicles": len(incoming.vehicles)})

    return handle
