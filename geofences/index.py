"""Which fences a batch of positions is inside, outside or too close to call, at a margin.

Theory of operation. A position with margin m (its accuracy times a factor, or a configured
minimum) is *inside* a fence when its signed distance to the fence exceeds m, *outside* when it
is below -m, and in the *band* otherwise. Signed distances are exact and computed with numpy
(see ``outline``): no shapely object is created per position, since creating one Point costs
more than the whole budget of a position.

Finding the few fences worth looking at: the plane is cut into square cells, and every cell is
paired with the fences within the largest margin of it, once, when the fences change (an
STRtree with shapely's vectorised predicates does the same job several times slower per
position; ``python -m benchmarks geofence`` measures both). Each pair keeps the signed distance
from the cell's centre. Because signed
distance changes by at most the distance moved, every position in the cell is within half a
cell diagonal of that value, so most positions are decided by their cell alone; only those
close to (boundary +- margin) get an exact distance. Looking a batch up is integer arithmetic,
one gather (or a binary search over sorted cell keys when fences are spread over a province),
and a few numpy passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from geofences.outline import FenceOutline, OutlineSet

IntArray = npt.NDArray[np.int64]
Int8Array = npt.NDArray[np.int8]
FloatArray = npt.NDArray[np.float64]

INSIDE = np.int8(1)
BAND = np.int8(0)
OUTSIDE = np.int8(-1)

_DENSE_MAX_CELLS = 1 << 23
_BUILD_CHUNK = 20_000
# Cell (ix, iy) -> (ix + 2**30) * 2**32 + (iy + 2**30): sortable, decodable, and local metres
# divided by the cell size stay far inside +-2**30.
_KEY_OFFSET = np.int64(1 << 30)
_KEY_SHIFT = np.int64(1 << 32)


def _cell_key(ix: IntArray, iy: IntArray) -> IntArray:
    return (ix + _KEY_OFFSET) * _KEY_SHIFT + (iy + _KEY_OFFSET)


@dataclass(frozen=True, slots=True)
class Classified:
    """Candidate (position, fence) pairs; pairs not listed are outside by more than any margin."""

    position: IntArray
    fence: IntArray
    relation: Int8Array  # INSIDE, BAND or OUTSIDE


def _ragged(starts: IntArray, counts: IntArray) -> tuple[IntArray, IntArray]:
    """For rows with [start, start + count): (row of each element, element index)."""
    total = int(counts.sum())
    rows = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    if total == 0:
        return rows, rows
    first = np.cumsum(counts) - counts
    within = np.arange(total, dtype=np.int64) - np.repeat(first, counts)
    return rows, starts[rows] + within


class FenceIndex:
    def __init__(
        self,
        areas: Sequence[BaseGeometry],
        outlines: Sequence[FenceOutline],
        *,
        max_margin_m: float,
        cell_m: float | None = None,
    ) -> None:
        if not areas or len(areas) != len(outlines):
            raise ValueError("a fence index needs one outline per fence and at least one fence")
        self.max_margin_m = float(max_margin_m)
        self.outlines = OutlineSet(outlines)
        area_arr = np.asarray(areas, dtype=object)
        bounds = shapely.bounds(area_arr)
        if cell_m is None:
            # Small against the fences: most cells then lie wholly inside, outside or within
            # the band of a fence, and only positions near (boundary +- margin) need more.
            extent = np.maximum(bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1])
            cell_m = float(np.clip(np.median(extent) / 12, 4.0, 5_000.0))
        self.cell_m = cell_m
        self._half_diagonal = cell_m * np.sqrt(0.5)
        reach = self.max_margin_m
        ix0 = np.floor((bounds[:, 0] - reach) / cell_m).astype(np.int64)
        iy0 = np.floor((bounds[:, 1] - reach) / cell_m).astype(np.int64)
        ix1 = np.floor((bounds[:, 2] + reach) / cell_m).astype(np.int64)
        iy1 = np.floor((bounds[:, 3] + reach) / cell_m).astype(np.int64)
        nx, ny = ix1 - ix0 + 1, iy1 - iy0 + 1
        fence_idx, cell_no = _ragged(np.zeros(len(areas), np.int64), nx * ny)
        cx = ix0[fence_idx] + cell_no % nx[fence_idx]
        cy = iy0[fence_idx] + cell_no // nx[fence_idx]
        # Signed distance from each candidate cell's centre; keep the cells within reach.
        sd = self._centre_distances(fence_idx, cx, cy)
        near = sd >= -(reach + self._half_diagonal)
        fence_idx, cx, cy, sd = fence_idx[near], cx[near], cy[near], sd[near]
        pair_keys = _cell_key(cx, cy)
        order = np.lexsort((fence_idx, pair_keys))
        pair_keys, fence_idx, sd = pair_keys[order], fence_idx[order], sd[order]
        # (np.unique hashes large int arrays slowly; the keys are sorted already.)
        first = np.flatnonzero(np.r_[True, pair_keys[1:] != pair_keys[:-1]])
        keys = pair_keys[first]
        kx, ky = keys // _KEY_SHIFT - _KEY_OFFSET, keys % _KEY_SHIFT - _KEY_OFFSET
        self._cell_keys = keys
        # A site's cells usually fit a dense lookup table (one gather per position); fences
        # spread over a province fall back to a binary search over the sorted cell keys.
        self._gx0, self._gy0 = int(kx.min()), int(ky.min())
        self._gnx, self._gny = int(kx.max()) - self._gx0 + 1, int(ky.max()) - self._gy0 + 1
        self._dense: npt.NDArray[np.int32] | None = None
        if self._gnx * self._gny <= _DENSE_MAX_CELLS:
            dense = np.full(self._gnx * self._gny, -1, dtype=np.int32)
            dense[(kx - self._gx0) * self._gny + (ky - self._gy0)] = np.arange(len(keys))
            self._dense = dense
        self._cell_start = np.r_[first, len(pair_keys)].astype(np.int64)
        self._pair_fence = fence_idx
        self._pair_sd = sd
        self.fence_count = len(areas)
        self.pair_count = len(fence_idx)

    def _centre_distances(self, fence: IntArray, cx: IntArray, cy: IntArray) -> FloatArray:
        parts = [
            self.outlines.signed_distance(
                fence[i : i + _BUILD_CHUNK],
                ((cx[i : i + _BUILD_CHUNK] + 0.5) * self.cell_m).astype(np.float64),
                ((cy[i : i + _BUILD_CHUNK] + 0.5) * self.cell_m).astype(np.float64),
            )
            for i in range(0, len(fence), _BUILD_CHUNK)
        ]
        return np.concatenate(parts) if parts else np.empty(0)

    def classify(self, x: FloatArray, y: FloatArray, margin_m: FloatArray) -> Classified:
        """Relation of each position to each nearby fence; margins above the maximum are clipped."""
        margin = np.minimum(margin_m, self.max_margin_m)
        ix = np.floor(x / self.cell_m).astype(np.int64)
        iy = np.floor(y / self.cell_m).astype(np.int64)
        if self._dense is not None:
            gx, gy = ix - self._gx0, iy - self._gy0
            on_grid = (gx >= 0) & (gx < self._gnx) & (gy >= 0) & (gy < self._gny)
            dense_slot = self._dense[np.where(on_grid, gx * self._gny + gy, 0)]
            found = on_grid & (dense_slot >= 0)
            slot = np.where(found, dense_slot, 0).astype(np.int64)
        else:
            keys = _cell_key(ix, iy)
            slot = np.minimum(np.searchsorted(self._cell_keys, keys), len(self._cell_keys) - 1)
            found = self._cell_keys[slot] == keys
        starts = self._cell_start[slot]
        counts = np.where(found, self._cell_start[slot + 1] - starts, 0)
        position, pair = _ragged(starts, counts)
        fence = self._pair_fence[pair]
        m = margin[position]
        sd, h = self._pair_sd[pair], self._half_diagonal
        relation = np.full(len(pair), BAND, dtype=np.int8)
        relation[sd - h > m] = INSIDE
        relation[sd + h < -m] = OUTSIDE
        undecided = np.flatnonzero((np.abs(sd - m) <= h) | (np.abs(sd + m) <= h))
        if undecided.size:
            p = position[undecided]
            exact = self.outlines.signed_distance(fence[undecided], x[p], y[p])
            mu = m[undecided]
            relation[undecided] = np.where(
                exact > mu, INSIDE, np.where(exact < -mu, OUTSIDE, BAND)
            ).astype(np.int8)
        return Classified(position=position, fence=fence, relation=relation)

    def signed_distance(self, fence: IntArray, x: FloatArray, y: FloatArray) -> FloatArray:
        return self.outlines.signed_distance(fence, x, y)
