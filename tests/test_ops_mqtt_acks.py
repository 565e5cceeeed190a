"""Manual acknowledgements: what was not acknowledged comes again; what was, does not."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from ops.mqtt_acks import AckingSubscriber, BrokerLost, Received
from tests.conftest import MosquittoBroker

pytestmark = pytest.mark.integration


async def _take(subscriber: AckingSubscriber, count: int) -> list[Received]:
    got: list[Received] = []
    messages = subscriber.messages()
    async with asyncio.timeout(5):
        while len(got) < count:
            got.append(await anext(messages))
    await messages.aclose()
    return got


@pytest.mark.parametrize("version", [MQTTProtocolVersion.MQTTv5, MQTTProtocolVersion.MQTTv311])
async def test_only_unacknowledged_messages_are_delivered_again(
    mqtt_broker: MosquittoBroker, version: MQTTProtocolVersion
) -> None:
    def subscriber() -> AckingSubscriber:
        return AckingSubscriber("127.0.0.1", mqtt_broker.port, client_id="ingest-1",
                                version=version)

    first = subscriber()
    await first.connect()
    await first.subscribe("pw/v1/#", qos=1)
    async with aiomqtt.Client("127.0.0.1", mqtt_broker.port) as producer:
        for n in range(4):
            await producer.publish(f"pw/v1/m{n}", f"{n}".encode(), qos=1)
    got = await _take(first, 4)
    assert [m.payload for m in got] == [b"0", b"1", b"2", b"3"]
    first.ack(got[0])
    first.ack(got[2])
    await first.publish("pw/v1/ack-probe", b"", qos=1)  # a round trip: the acks have left
    await first.close()

    again = subscriber()
    await again.connect()
    redelivered = await _take(again, 3)  # m1, m3 and our own probe
    assert sorted(m.payload for m in redelivered) == [b"", b"1", b"3"]
    for message in redelivered:
        again.ack(message)
    await again.close()


async def test_a_broker_that_goes_away_ends_the_message_stream(
    mqtt_broker: MosquittoBroker,
) -> None:
    subscriber = AckingSubscriber("127.0.0.1", mqtt_broker.port, client_id="ingest-2",
                                  version=MQTTProtocolVersion.MQTTv5)
    await subscriber.connect()
    await subscriber.subscribe("pw/v1/#")
    mqtt_broker.stop()
    with pytest.raises(BrokerLost):
        async with asyncio.timeout(5):
            async for _ in subscriber.messages():
                pass
    await subscriber.close()


async def test_no_broker_is_a_connection_error(mqtt_broker: MosquittoBroker) -> None:
    mqtt_broker.stop()
    subscriber = AckingSubscriber("127.0.0.1", mqtt_broker.port, client_id="ingest-3",
                                  version=MQTTProtocolVersion.MQTTv5)
    with pytest.raises(OSError):
        await subscriber.connect()
