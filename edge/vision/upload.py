"""Upload stored evidence images to the cloud, by content hash, and forget them once accepted.

    PUT {base_url}/api/v1/evidence/{sha256}
    Authorization: Bearer <gateway API key>
    Content-Type: image/jpeg
    <the JPEG bytes>

The cloud answers 201 (stored) or 200 (already had it): the local file is removed. 409 or 422
means the bytes do not hash to the id (a damaged file): it is moved to ``rejected/`` and logged,
never retried. 401/403 are logged and retried later (a key may be registered late). Any other
answer or a network error ends the pass; the next pass is scheduled with backoff. Images are
small (tens of kB) and events never wait for them: an event is sent at once, its images follow.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx

from edge.vision.evidence import EvidenceStore
from ops.backoff import Backoff
from ops.supervised import Supervised

log = logging.getLogger(__name__)


class UploadStopped(RuntimeError):
    """The cloud cannot take uploads now; try again later."""


class EvidenceUploader:
    def __init__(
        self,
        store: EvidenceStore,
        *,
        base_url: str,
        api_key: str,
        interval_s: float = 5.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.store = store
        self.interval_s = interval_s
        self._client = client or httpx.AsyncClient(
            base_url=base_url, timeout=30.0, headers={"Authorization": f"Bearer {api_key}"}
        )
        self._rejected = store.root / "rejected"

    async def upload_pending(self) -> int:
        """One pass over stored images; returns how many the cloud took."""
        taken = 0
        for path in list(self.store.pending()):
            sha = path.stem
            try:
                data = await asyncio.to_thread(path.read_bytes)
            except FileNotFoundError:
                continue  # uploaded by an earlier pass meanwhile
            try:
                response = await self._client.put(
                    f"/api/v1/evidence/{sha}", content=data,
                    headers={"Content-Type": "image/jpeg"},
                )
            except httpx.HTTPError as err:
                raise UploadStopped(f"evidence upload failed: {err}") from err
            if response.status_code in (200, 201, 204):
                self.store.forget(sha)
                taken += 1
            elif response.status_code in (409, 422):
                self._reject(path, response)
            else:
                raise UploadStopped(
                    f"evidence upload answered {response.status_code}: {response.text[:200]}"
                )
        return taken

    def _reject(self, path: Path, response: httpx.Response) -> None:
        self._rejected.mkdir(parents=True, exist_ok=True)
        path.replace(self._rejected / path.name)
        log.error("evidence image rejected by the cloud; kept aside",
                  extra={"sha256": path.stem, "status": response.status_code,
                         "reason": response.text[:200]})

    async def run(self) -> None:
        """Upload until cancelled: a pass every ``interval_s``, backing off while the cloud is
        away (one supervised task, ops/supervised.py)."""
        owner = Supervised(
            "evidence-upload", self._passes, retry_on=(UploadStopped,),
            backoff=Backoff(initial_s=self.interval_s, maximum_s=300.0),
        )
        try:
            async with owner:
                await owner.wait()
        finally:
            await self._client.aclose()

    async def _passes(self, owner: Supervised) -> None:
        while True:
            await self.upload_pending()
            owner.up("the cloud takes uploads")
            await asyncio.sleep(self.interval_s)
