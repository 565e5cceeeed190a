"""The local siren: a retained message per alarm on the site's own broker (I/O only; when an
alarm sounds is edge/alerting.py's decision).

A siren controller, a PLC or a GPIO bridge on the gateway subscribes to
``pw/local/{site}/{gateway}/alarm/#``; the payload is JSON (state on/off, type, subject,
severity, explanation). Published with QoS 1 and retained, so a controller that restarts
sees the alarms that are on.
"""

from __future__ import annotations

import json

import aiomqtt

from edge.alerting import Alarm


def alarm_topic(site: str, gateway: str, alert_type: str, subject: str) -> str:
    return f"pw/local/{site}/{gateway}/alarm/{alert_type}/{subject.replace('/', '_')}"


def alarm_payload(alarm: Alarm) -> bytes:
    return json.dumps({
        "state": "on" if alarm.on else "off",
        "alert_type": alarm.alert_type, "subject": alarm.subject,
        "severity": alarm.severity, "explanation": alarm.explanation,
        "at_us": alarm.at_us,
    }).encode()


class LocalSiren:
    """Sounds (and silences) alarms on the local broker; one connection per call is enough
    for alarms, which are rare."""

    def __init__(self, host: str, port: int, site: str, gateway: str) -> None:
        self.host, self.port, self.site, self.gateway = host, port, site, gateway

    async def sound(self, alarm: Alarm) -> None:
        async with aiomqtt.Client(self.host, self.port, identifier=None) as client:
            await client.publish(
                alarm_topic(self.site, self.gateway, alarm.alert_type, alarm.subject),
                alarm_payload(alarm), qos=1, retain=True)

    def __repr__(self) -> str:
        return f"LocalSiren({self.host}:{self.port})"
