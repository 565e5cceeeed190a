"""Messages from devices on an MQTT broker (the gateway's local one, usually), with reconnects.

Shared by the tracker and sensor pipelines: an async iterator of (topic, payload) that
reconnects with backoff forever and logs each disconnect once. Device messages are read with
QoS 0 semantics on the device side, so nothing here promises delivery; what the gateway
decides from them is made durable by ``ctx.emit``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from urllib.parse import urlsplit

import aiomqtt

from ops.backoff import Backoff

log = logging.getLogger(__name__)


def broker_address(url: str) -> tuple[str, int, str | None, str | None]:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError(f"broker URL {url!r} must look like mqtt://host:port")
    return parts.hostname, parts.port or 1883, parts.username, parts.password


async def device_messages(
    url: str, topics: Sequence[str], *, client_id: str
) -> AsyncIterator[tuple[str, bytes]]:
    host, port, user, password = broker_address(url)
    backoff = Backoff(initial_s=0.5, maximum_s=15.0)
    while True:
        try:
            async with aiomqtt.Client(
                host, port, identifier=client_id, username=user, password=password
            ) as client:
                for topic in topics:
                    await client.subscribe(topic, qos=1)
                if backoff.attempts:
                    log.info("device broker reconnected", extra={"url": url})
                backoff.reset()
                async for message in client.messages:
                    payload = message.payload
                    if payload is None:
                        payload = b""  # an empty message: the parser refuses it, by reason
                    elif isinstance(payload, str | int | float):
                        payload = str(payload).encode()
                    yield str(message.topic), bytes(payload)
        except aiomqtt.MqttError as err:
            delay = backoff.next_delay()
            if backoff.attempts == 1:
                log.warning("device broker unreachable", extra={"url": url, "error": str(err)})
            await asyncio.sleep(delay)
