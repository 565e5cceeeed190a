"""The local alarm output: a retained message per alarm on the site's own broker.

A siren controller, a PLC or a GPIO bridge on the gateway subscribes to
``pw/local/{site}/{gateway}/alarm/#``; the payload is JSON (state on/off, type, subject,
severity, explanation). Published with QoS 1 and retained, so a controller that restarts
sees the alarms that are on.
"""

from __future__ import annotations

import json

import aiomqtt

from decisions.rules import Decision


def alarm_topic(site: str, gateway: str, alert_type: str, subject: str) -> str:
    return f"pw/local/{site}/{gateway}/alarm/{alert_type}/{subject.replace('/', '_')}"


def alarm_payload(decision: Decision) -> bytes:
    return json.dumps({
        "state": "on" if decision.action == "raise" else "off",
        "alert_type": decision.alert_type, "subject": decision.subject,
        "severity": decision.severity, "explanation": decision.explanation,
        "at_us": decision.at_us,
    }).encode()


class LocalAlarm:
    """Sounds (and silences) alarms on the local broker; one connection per call is enough
    for alarms, which are rare."""

    def __init__(self, host: str, port: int, site: str, gateway: str) -> None:
        self.host, self.port, self.site, self.gateway = host, port, site, gateway

    async def sound(self, decision: Decision) -> None:
        if decision.alert_type is None or decision.action == "record":
            return
        async with aiomqtt.Client(self.host, self.port, identifier=None) as client:
            await client.publish(
                alarm_topic(self.site, self.gateway, decision.alert_type, decision.subject),
                alarm_payload(decision), qos=1, retain=True)

    def __repr__(self) -> str:
        return f"LocalAlarm({self.host}:{self.port})"


