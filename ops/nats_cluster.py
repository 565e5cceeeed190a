"""A local NATS cluster on loopback: N ``nats-server`` processes with JetStream and MQTT.

For tests, the scale-out benchmark and trying the cluster profile on one machine; production
nodes use the same settings (docs/scaling.md). Every node has a client port (NATS), a route
port (the cluster mesh) and an MQTT listener, so a gateway may connect to any node. MQTT in
NATS needs JetStream and a ``server_name``; its QoS 1 sessions live in JetStream, replicated
like any stream.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

CLUSTER_NAME = "pw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class NatsNode:
    name: str
    workdir: Path
    client_port: int = field(default_factory=free_port)
    route_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def config(self, routes: list[int]) -> str:
        # MQTT's own streams (sessions, QoS 1 messages, retained) get as many copies as the
        # cluster has nodes, up to 3. Left to itself NATS 2.9 may create them with 2 when the
        # first MQTT client connects, and then losing one of those two nodes stalls every MQTT
        # connect on the others ("NO quorum").
        replicas = min(len(routes) + 1, 3)
        lines = [
            f'server_name: "{self.name}"',
            f"listen: 127.0.0.1:{self.client_port}",
            # A worker pulling batches of a few hundred messages must not be cut off as slow.
            "max_pending: 256MB",
            f'jetstream {{ store_dir: "{self.workdir}/js", max_memory_store: 256MB, '
            "max_file_store: 4GB }",
            f'mqtt {{ listen: 127.0.0.1:{self.mqtt_port}, ack_wait: "30s", '
            f"stream_replicas: {replicas} }}",
        ]
        if routes:  # one node alone is no cluster (JetStream refuses a cluster without routes)
            route_list = ", ".join(f"nats-route://127.0.0.1:{p}" for p in routes)
            lines.append(f"cluster {{ name: {CLUSTER_NAME}, listen: 127.0.0.1:{self.route_port},"
                         f" routes: [{route_list}] }}")
        return "\n".join(lines) + "\n"


class NatsCluster:
    """``size`` nodes routed to each other; start() waits until JetStream has a leader."""

    def __init__(self, workdir: Path, size: int = 3, binary: str = "nats-server") -> None:
        self.workdir = workdir
        self.binary = binary
        self.nodes = [NatsNode(f"n{i + 1}", workdir / f"n{i + 1}") for i in range(size)]

    @property
    def nats_urls(self) -> list[str]:
        return [n.nats_url for n in self.nodes]

    @property
    def mqtt_urls(self) -> list[str]:
        return [n.mqtt_url for n in self.nodes]

    def log(self, index: int) -> str:
        path = self.nodes[index].workdir / "nats.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, timeout_s: float = 30, *, attempts: int = 3) -> None:
        if shutil.which(self.binary) is None:
            raise RuntimeError(f"{self.binary} is required (apt-get install nats-server)")
        for attempt in range(attempts):
            for index in range(len(self.nodes)):
                self.start_node(index, wait=False)
            try:
                for index in range(len(self.nodes)):
                    self._wait_listening(index, timeout_s)
                break
            except RuntimeError:
                # A port picked free can be taken before the node binds it (another process's
                # outgoing connection): the whole cluster starts again on fresh ports, since
                # each node's routes name the others'.
                taken = any("address already in use" in self.log(i)
                            for i in range(len(self.nodes)))
                self.stop()
                if not taken or attempt == attempts - 1:
                    raise
                for node in self.nodes:
                    shutil.rmtree(node.workdir, ignore_errors=True)
                    node.client_port, node.route_port, node.mqtt_port = (
                        free_port(), free_port(), free_port())
        for index in range(len(self.nodes)):
            self.wait_mqtt_ready(index, timeout_s)

    def wait_mqtt_ready(self, index: int, timeout_s: float = 30) -> None:
        """Until the node accepts an MQTT session: the first one waits for a JetStream leader
        and the MQTT streams, seconds after a fresh cluster starts."""
        node = self.nodes[index]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if _mqtt_connack(node.mqtt_port) == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"nats-server {node.name} refuses MQTT:\n{self.log(index)[-3000:]}")

    def start_node(self, index: int, *, wait: bool = True, timeout_s: float = 30) -> None:
        node = self.nodes[index]
        node.workdir.mkdir(parents=True, exist_ok=True)
        routes = [n.route_port for n in self.nodes if n is not node]
        conf = node.workdir / "nats.conf"
        conf.write_text(node.config(routes))
        log = (node.workdir / "nats.log").open("ab")
        node.process = subprocess.Popen([self.binary, "-c", str(conf)], stdout=log, stderr=log)
        if wait:
            self._wait_listening(index, timeout_s)

    def _wait_listening(self, index: int, timeout_s: float) -> None:
        node = self.nodes[index]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if node.process is None or node.process.poll() is not None:
                break
            with contextlib.suppress(OSError):
                # The MQTT listener opens last, once JetStream is up on this node.
                socket.create_connection(("127.0.0.1", node.mqtt_port), 0.2).close()
                return
            time.sleep(0.05)
        raise RuntimeError(f"nats-server {node.name} did not start:\n{self.log(index)[-3000:]}")

    def stop_node(self, index: int, sig: int = signal.SIGTERM) -> None:
        node = self.nodes[index]
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(sig)
            node.process.wait(15)
        node.process = None

    def stop(self) -> None:
        for index in range(len(self.nodes)):
            self.stop_node(index)


def _mqtt_connack(port: int) -> int | None:
    """The CONNACK return code for a clean MQTT 3.1.1 session, or None without an answer."""
    client_id = b"pw-ready-probe"
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client_id).to_bytes(2, "big") + client_id
    packet = bytes([0x10, len(body)]) + body + b"\xe0\x00"  # CONNECT, then DISCONNECT
    try:
        with socket.create_connection(("127.0.0.1", port), 2) as conn:
            conn.settimeout(5)
            conn.sendall(packet[:-2])
            answer = conn.recv(4)
            conn.sendall(packet[-2:])
    except OSError:
        return None
    return answer[3] if len(answer) == 4 and answer[0] == 0x20 else None
