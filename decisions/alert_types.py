"""Every alert type either side raises, named once.

An alert's type is ``family.name``; the family (theft, tamper, damage, webhook) is what a
financier's webhook filter and the map's colours key on. Rules may name other types (a site's
own rule set can invent one), so the contract keeps ``alert_type`` a checked string; the types
the code itself raises are members here, and a ``StrEnum`` member *is* that string on the wire.
"""

from __future__ import annotations

from enum import StrEnum


class AlertType(StrEnum):
    # theft: goods or a vehicle leaving without a release
    TAG_MISSING = "theft.tag_missing"
    UNRELEASED_DEPARTURE = "theft.unreleased_departure"
    MOVEMENT_WITHOUT_RELEASE = "theft.movement_without_release"
    UNAUTHORISED_VEHICLE = "theft.unauthorized_vehicle"
    GEOFENCE_EXIT = "theft.geofence_exit"
    DOOR_OPEN_OUTSIDE_HOURS = "theft.door_open_outside_hours"
    SEAL_BROKEN = "theft.seal_broken"
    WEIGHT_DROP = "theft.weight_drop"
    TERMINAL_THEFT_ALARM = "theft.terminal_alarm"
    # tamper: the watch itself is being blinded
    READER_OFFLINE = "tamper.reader_offline"
    GATEWAY_OFFLINE = "tamper.gateway_offline"
    CAMERA_BLOCKED = "tamper.camera_blocked"
    TRACKER_SILENT = "tamper.tracker_silent"
    TERMINAL_TAMPER_ALARM = "tamper.terminal_alarm"
    # damage: the goods' condition
    TEMPERATURE = "damage.temperature"
    HUMIDITY = "damage.humidity"
    SHOCK = "damage.shock"
    LABEL_UNREADABLE = "damage.label_unreadable"
    # integrity: the sources held against each other disagree (docs/integrity.md)
    COUNT_MISMATCH = "integrity.count_mismatch"
    WEIGHT_MISMATCH = "integrity.weight_mismatch"
    DUPLICATE_IDENTITY = "integrity.duplicate_identity"
    SHIPMENT_CONTRADICTED = "integrity.shipment_contradicted"
    # the platform's own delivery
    WEBHOOK_ENDPOINT_DISABLED = "webhook.endpoint_disabled"
