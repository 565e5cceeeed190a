"""The registered gateways and their keys, cached for ingest and refreshed when one is unknown."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping

from psycopg import AsyncConnection

from cloud.ingest.decode import RegisteredGateway
from contract import load_public_key

log = logging.getLogger(__name__)


class GatewayDirectory(Mapping[str, RegisteredGateway]):
    def __init__(self, refresh_every_s: float = 30.0) -> None:
        self._gateways: dict[str, RegisteredGateway] = {}
        self._refresh_every_s = refresh_every_s
        self._loaded_at = float("-inf")

    def __getitem__(self, key: str) -> RegisteredGateway:
        return self._gateways[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._gateways)

    def __len__(self) -> int:
        return len(self._gateways)

    def stale(self, names: set[str]) -> bool:
        """Reload if asked about a gateway we do not know, at most every few seconds."""
        unknown = bool(names - self._gateways.keys())
        age = time.monotonic() - self._loaded_at
        return age > self._refresh_every_s or (unknown and age > 2.0)

    async def load(self, conn: AsyncConnection) -> None:
        cur = await conn.execute("SELECT id, site_id, public_key FROM gateways")
        gateways = {}
        for gateway_id, site_id, public_key in await cur.fetchall():
            try:
                key = load_public_key(public_key)
            except ValueError as err:
                log.error("gateway has an unusable public key",
                          extra={"gateway": gateway_id, "error": str(err)})
                continue
            gateways[gateway_id] = RegisteredGateway(gateway_id, site_id, key)
        self._gateways = gateways
        self._loaded_at = time.monotonic()
