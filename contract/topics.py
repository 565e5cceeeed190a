"""MQTT topic layout: ``pw/v1/{site}/{gateway}/{channel}``.

Channels: ``events`` (facts that must never be lost), ``telemetry/{kind}`` (bulk readings),
``status`` (retained; the MQTT last will marks the gateway offline) and ``cmd/{name}``
(cloud to edge). Everything the cloud needs is inside the envelope, so nothing here relies on
MQTT 5 features (the embedded demo broker speaks 3.1.1 only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

TOPIC_ROOT = "pw/v1"
INGEST_SHARE_GROUP = "ingest"

# Identifiers become topic levels: no '/', '+', '#', no spaces, bounded length.
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Channel(StrEnum):
    EVENTS = "events"
    TELEMETRY = "telemetry"
    STATUS = "status"
    CMD = "cmd"


@dataclass(frozen=True, slots=True)
class TopicAddress:
    site: str
    gateway: str
    channel: Channel
    subtopic: str | None  # telemetry kind or command name


def validate_identifier(value: str, what: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(
            f"{what} {value!r} must be 1-64 characters of letters, digits, '_', '.' or '-' "
            "and start with a letter or digit"
        )
    return value


def _base(site: str, gateway: str) -> str:
    return f"{TOPIC_ROOT}/{site}/{gateway}"


def events_topic(site: str, gateway: str) -> str:
    return f"{_base(site, gateway)}/{Channel.EVENTS}"


def telemetry_topic(site: str, gateway: str, kind: str) -> str:
    return f"{_base(site, gateway)}/{Channel.TELEMETRY}/{kind}"


def status_topic(site: str, gateway: str) -> str:
    return f"{_base(site, gateway)}/{Channel.STATUS}"


def cmd_topic(site: str, gateway: str, name: str) -> str:
    return f"{_base(site, gateway)}/{Channel.CMD}/{name}"


def topic_for(site: str, gateway: str, channel: Channel, subtopic: str | None) -> str:
    if channel is Channel.EVENTS:
        return events_topic(site, gateway)
    if channel is Channel.STATUS:
        return status_topic(site, gateway)
    if subtopic is None:
        raise ValueError(f"channel {channel} needs a subtopic")
    if channel is Channel.TELEMETRY:
        return telemetry_topic(site, gateway, subtopic)
    return cmd_topic(site, gateway, subtopic)


def ingest_subscription(shared: bool) -> str:
    """What cloud ingest subscribes to: a shared subscription where the broker supports it."""
    plain = f"{TOPIC_ROOT}/#"
    return f"$share/{INGEST_SHARE_GROUP}/{plain}" if shared else plain


def parse_topic(topic: str) -> TopicAddress:
    parts = topic.split("/")
    if len(parts) < 5 or f"{parts[0]}/{parts[1]}" != TOPIC_ROOT:
        raise ValueError(f"topic {topic!r} is not under {TOPIC_ROOT}/{{site}}/{{gateway}}/")
    site, gateway, channel_name = parts[2], parts[3], parts[4]
    try:
        channel = Channel(channel_name)
    except ValueError:
        raise ValueError(f"topic {topic!r} has unknown channel {channel_name!r}") from None
    rest = "/".join(parts[5:]) or None
    if channel in (Channel.TELEMETRY, Channel.CMD) and rest is None:
        raise ValueError(f"topic {topic!r}: channel {channel} needs a subtopic")
    if channel in (Channel.EVENTS, Channel.STATUS) and rest is not None:
        raise ValueError(f"topic {topic!r}: channel {channel} takes no subtopic")
    return TopicAddress(site=site, gateway=gateway, channel=channel, subtopic=rest)
