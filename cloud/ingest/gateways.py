"""The registered gateways and their keys, cached for ingest.

The cache is reloaded when a gateway is unknown (at most every few seconds), every 30 s as a
fallback, and at once when the database announces a change (``NOTIFY pw_gateways``, sent by a
trigger on every registration, re-key and revocation; see :func:`gateway_change_listener`), so a
revoked or re-keyed gateway's old key is refused by the next batch of every ingest process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping

import psycopg
from psycopg import AsyncConnection

from cloud.ingest.decode import RegisteredGateway
from contract import load_public_key
from contract.envelope import time_us
from ops.backoff import Backoff
from ops.supervised import Supervised

log = logging.getLogger(__name__)

GATEWAYS_CHANNEL = "pw_gateways"


class GatewayDirectory(Mapping[str, RegisteredGateway]):
    def __init__(self, refresh_every_s: float = 30.0) -> None:
        self._gateways: dict[str, RegisteredGateway] = {}
        self._refresh_every_s = refresh_every_s
        self._loaded_at = float("-inf")
        self._changed = False

    def __getitem__(self, key: str) -> RegisteredGateway:
        return self._gateways[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._gateways)

    def __len__(self) -> int:
        return len(self._gateways)

    def invalidate(self) -> None:
        """A gateway changed in the database: reload before the next decision."""
        self._changed = True

    def stale(self, names: set[str]) -> bool:
        """Reload if told of a change, or asked about a gateway we do not know (at most every
        few seconds), or after the refresh period."""
        if self._changed:
            return True
        unknown = bool(names - self._gateways.keys())
        age = time.monotonic() - self._loaded_at
        return age > self._refresh_every_s or (unknown and age > 2.0)

    async def load(self, conn: AsyncConnection) -> None:
        self._changed = False  # a change announced during the query is caught by the next load
        cur = await conn.execute(
            "SELECT id, site_id, public_key, created_at, revoked_at IS NOT NULL FROM gateways"
        )
        gateways = {}
        for gateway_id, site_id, public_key, created_at, revoked in await cur.fetchall():
            try:
                key = load_public_key(public_key)
            except ValueError as err:
                log.error("gateway has an unusable public key",
                          extra={"gateway": gateway_id, "error": str(err)})
                continue
            gateways[gateway_id] = RegisteredGateway(
                gateway_id, site_id, key, registered_at_us=time_us(created_at), revoked=revoked)
        self._gateways = gateways
        self._loaded_at = time.monotonic()


def gateway_change_listener(database_url: str, directory: GatewayDirectory) -> Supervised:
    """LISTEN for gateway changes while open, invalidating ``directory`` on each (and on every
    reconnect, since notifications sent while disconnected are lost)."""

    async def listen(owner: Supervised) -> None:
        async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
            await conn.execute(f"LISTEN {GATEWAYS_CHANNEL}")
            directory.invalidate()
            owner.up("listening")
            async for _ in conn.notifies():
                directory.invalidate()

    return Supervised(
        "gateway-changes", listen, retry_on=(psycopg.OperationalError, OSError),
        backoff=Backoff(initial_s=0.2, maximum_s=10),
        reason_of=lambda err: str(err).splitlines()[0] if str(err) else type(err).__name__,
    )
