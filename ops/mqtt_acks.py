"""An MQTT subscriber for asyncio that acknowledges a message only when told to.

aiomqtt (2.5) acknowledges every QoS 1 message as it arrives and offers no public switch, so the
ingest, which must acknowledge only after its database commit, talks to paho directly through
this one small class: paho's public ``manual_ack_set`` and ``ack(mid, qos)``, its network loop in
paho's own thread, and results handed to the event loop with ``call_soon_threadsafe``.

One instance is one connection: when it drops, ``messages()`` and pending calls raise
`BrokerLost` and the owner (ops/supervised.py) makes a new instance after its backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ops import timeouts
from ops.mqtt import NO_DELAY, RECEIVE_MAXIMUM, SESSION_EXPIRY_S


class BrokerLost(ConnectionError):
    """The connection failed or dropped (an OSError, so owners retry it like a socket error)."""


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    qos: int
    mid: int  # what `ack` needs


def _failed(reason: ReasonCode | int | MQTTErrorCode) -> bool:
    if isinstance(reason, ReasonCode):
        return reason.is_failure
    return int(reason) != 0


class AckingSubscriber:
    """Connect with ``await connect()``, read ``messages()``, ``ack`` each after it is safe."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str,
        version: MQTTProtocolVersion,
        username: str | None = None,
        password: str | None = None,
        keepalive_s: int = 30,
        timeout_s: float = 10.0,
    ) -> None:
        self.version = version
        self._host, self._port, self._keepalive = host, port, keepalive_s
        self._timeout_s = timeout_s
        v5 = version is MQTTProtocolVersion.MQTTv5
        self._paho = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version,
            clean_session=None if v5 else False,  # a persistent session either way
        )
        if username is not None:
            self._paho.username_pw_set(username, password)
        self._paho.manual_ack_set(True)
        # A dropped connection ends this instance; paho must not quietly open another session.
        self._paho.reconnect_delay_set(3600, 3600)
        self._paho.on_connect = self._on_connect
        self._paho.on_disconnect = self._on_disconnect
        self._paho.on_message = self._on_message
        self._paho.on_publish = self._on_publish
        self._paho.on_subscribe = self._on_subscribe
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected: asyncio.Future[None] | None = None
        self._lost: asyncio.Future[None] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._incoming: asyncio.Queue[Received] = asyncio.Queue()

    # -- paho's thread -> the event loop -----------------------------------------------------
    def _soon(self, callback: Any, *args: Any) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop closed while paho still ran
            self._loop.call_soon_threadsafe(callback, *args)

    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self._soon(self._connect_result, reason)

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self._soon(self._dropped, f"disconnected: {reason}")

    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        received = Received(message.topic, bytes(message.payload), message.qos, message.mid)
        self._soon(self._incoming.put_nowait, received)

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _props: Any) -> None:
        self._soon(self._settle, mid, reason)

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reasons: Any, _props: Any) -> None:
        self._soon(self._settle, mid, reasons[0] if reasons else 0)

    # -- on the event loop -------------------------------------------------------------------
    def _connect_result(self, reason: Any) -> None:
        if self._connected is None or self._connected.done():
            return
        if _failed(reason):
            self._connected.set_exception(BrokerLost(f"connection refused: {reason}"))
        else:
            self._connected.set_result(None)

    def _dropped(self, why: str) -> None:
        error = BrokerLost(why)
        if self._connected is not None and not self._connected.done():
            self._connected.set_exception(error)
        if self._lost is not None and not self._lost.done():
            self._lost.set_exception(error)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    def _settle(self, mid: int, reason: Any) -> None:
        future = self._pending.pop(mid, None)
        if future is None or future.done():
            return
        if _failed(reason):
            future.set_exception(BrokerLost(f"broker refused: {reason}"))
        else:
            future.set_result(None)

    async def _await_mid(self, rc: MQTTErrorCode, mid: int | None) -> None:
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:  # paho gives no mid on failure
            raise BrokerLost(f"paho: {paho.error_string(rc)}")
        # Registered before the loop runs again, so paho's answer (queued with
        # call_soon_threadsafe) always finds it.
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[mid] = future
        assert self._lost is not None
        await timeouts.wait_for(asyncio.shield(future), self._timeout_s)

    # -- the public API ----------------------------------------------------------------------
    async def connect(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._connected = self._loop.create_future()
        self._lost = self._loop.create_future()
        self._lost.add_done_callback(lambda f: f.exception())  # read: no "never retrieved"
        properties = None
        if self.version is MQTTProtocolVersion.MQTTv5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = SESSION_EXPIRY_S
            properties.ReceiveMaximum = RECEIVE_MAXIMUM
        try:
            await asyncio.to_thread(
                self._paho.connect, self._host, self._port, self._keepalive,
                clean_start=False if properties is not None else paho.MQTT_CLEAN_START_FIRST_ONLY,
                properties=properties,
            )
        except OSError as err:
            raise BrokerLost(f"{type(err).__name__}: {err}") from err
        sock = self._paho.socket()
        if isinstance(sock, socket.socket):  # not a websocket wrapper
            for option in NO_DELAY:
                sock.setsockopt(*option)
        self._paho.loop_start()
        try:
            await timeouts.wait_for(self._connected, self._timeout_s)
        except BaseException:
            await self.close()
            raise

    async def subscribe(self, topic: str, qos: int = 1) -> None:
        rc, mid = self._paho.subscribe(topic, qos)
        await self._await_mid(rc, mid)

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self._paho.publish(topic, payload, qos=qos)
        if qos == 0:
            return
        await self._await_mid(info.rc, info.mid)

    def ack(self, message: Received) -> None:
        """Acknowledge one message to the broker (QoS 0 needs none)."""
        if message.qos > 0:
            self._paho.ack(message.mid, message.qos)

    async def messages(self) -> AsyncIterator[Received]:
        """Messages as they arrive; raises `BrokerLost` once the connection has dropped."""
        assert self._lost is not None, "connect() first"
        incoming, lost = self._incoming, self._lost
        while True:
            if not incoming.empty():
                yield incoming.get_nowait()
                continue
            if lost.done():
                lost.result()
            getter = asyncio.ensure_future(incoming.get())
            either: set[asyncio.Future[Any]] = {getter, lost}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
            else:
                getter.cancel()
                lost.result()

    async def close(self) -> None:
        """Disconnect (unacknowledged messages stay with the broker) and stop paho's thread."""
        with contextlib.suppress(Exception):
            self._paho.disconnect()
        await asyncio.to_thread(self._paho.loop_stop)
        self._dropped("closed")
