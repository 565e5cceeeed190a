"""Which fences a batch of positions is inside, outside or too close to call, at a margin.

Theory of operation. Every fence is kept at a few margin levels (0, 2, 5, ... metres): its
*core* (shrunk by the margin) and its *hull* (grown by it), all prepared for shapely's
vectorised ``contains_xy`` / ``intersects_xy``. A position with margin m (its accuracy or the
configured minimum, rounded up to the next level, which only makes the decision stricter) is
*inside* a fence when its core contains it, *outside* when its hull does not, and in the *band*
otherwise.

Finding the few fences worth testing must not touch shapely per position (creating one Point
costs more than the whole budget of a position), so the plane is cut into square cells and an
STRtree over the widest hulls pairs every cell with the fences it meets, once, when the fences
change. Each (cell, fence) pair also records whether the cell lies wholly inside or wholly
outside the fence and its distance to the boundary: a position in a cell whose clearance covers
its margin is decided without a test. Looking a batch up is then integer arithmetic, one gather
(or a binary search over sorted cell keys for fences spread over a province) and a vectorised
``contains_xy`` for the undecided pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

IntArray = npt.NDArray[np.int64]
Int8Array = npt.NDArray[np.int8]

INSIDE = np.int8(1)
BAND = np.int8(0)
OUTSIDE = np.int8(-1)

DEFAULT_LEVELS_M: tuple[float, ...] = (
    *(float(m) for m in range(0, 20, 2)),
    *(float(m) for m in range(20, 60, 5)),
    *(float(m) for m in range(60, 101, 10)),
)
_DENSE_MAX_CELLS = 1 << 23
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


def margin_levels(max_margin_m: float) -> tuple[float, ...]:
    levels = sorted({lvl for lvl in DEFAULT_LEVELS_M if lvl < max_margin_m} | {max_margin_m})
    return tuple(levels)


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
        *,
        levels_m: Sequence[float] = DEFAULT_LEVELS_M,
        cell_m: float | None = None,
    ) -> None:
        if not areas:
            raise ValueError("a fence index needs at least one fence")
        self.levels_m = np.asarray(sorted(levels_m), dtype=np.float64)
        if self.levels_m[0] != 0.0:
            raise ValueError("margin levels must start at 0 m")
        area_arr = np.asarray(areas, dtype=object)
        # cores[level, fence] and hulls[level, fence]
        self._cores = np.stack([shapely.buffer(area_arr, -lvl) for lvl in self.levels_m])
        self._hulls = np.stack([shapely.buffer(area_arr, lvl) for lvl in self.levels_m])
        shapely.prepare(self._cores)
        shapely.prepare(self._hulls)
        widest_hull = self._hulls[-1]
        bounds = shapely.bounds(widest_hull)
        if cell_m is None:
            # About an eighth of the median fence extent: most cells then lie wholly inside or
            # wholly outside a fence, and only positions in cells on a boundary need a test.
            extent = np.maximum(bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1])
            cell_m = float(np.clip(np.median(extent) / 8, 5.0, 5_000.0))
        self.cell_m = cell_m
        ix0 = np.floor(bounds[:, 0] / cell_m).astype(np.int64)
        iy0 = np.floor(bounds[:, 1] / cell_m).astype(np.int64)
        ix1 = np.floor(bounds[:, 2] / cell_m).astype(np.int64)
        iy1 = np.floor(bounds[:, 3] / cell_m).astype(np.int64)
        nx, ny = ix1 - ix0 + 1, iy1 - iy0 + 1
        fence_of_cell, cell_no = _ragged(np.zeros(len(areas), np.int64), nx * ny)
        cx = ix0[fence_of_cell] + cell_no % nx[fence_of_cell]
        cy = iy0[fence_of_cell] + cell_no // nx[fence_of_cell]
        keys = np.unique(_cell_key(cx, cy))
        kx, ky = keys // _KEY_SHIFT - _KEY_OFFSET, keys % _KEY_SHIFT - _KEY_OFFSET
        boxes = shapely.box(kx * cell_m, ky * cell_m, (kx + 1) * cell_m, (ky + 1) * cell_m)
        tree = shapely.STRtree(widest_hull)
        cell_idx, fence_idx = tree.query(boxes, predicate="intersects")
        order = np.lexsort((fence_idx, cell_idx))
        cell_idx, fence_idx = cell_idx[order], fence_idx[order]
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
        self._cell_start = np.searchsorted(cell_idx, np.arange(len(keys) + 1)).astype(np.int64)
        self._pair_fence = fence_idx.astype(np.int64)
        # Per (cell, fence): is the cell wholly inside / wholly outside the fence, and how far
        # is it from the fence's boundary? A position in the cell is then decided without a
        # test whenever that clearance covers its margin.
        pair_areas, pair_boxes = area_arr[fence_idx], boxes[cell_idx]
        self._pair_within = shapely.contains(pair_areas, pair_boxes)
        self._pair_disjoint = shapely.disjoint(pair_areas, pair_boxes)
        self._pair_clear_m = shapely.distance(shapely.boundary(pair_areas), pair_boxes)
        self.fence_count = len(areas)

    @property
    def max_margin_m(self) -> float:
        return float(self.levels_m[-1])

    def level_of(self, margin_m: npt.NDArray[np.float64]) -> IntArray:
        """Index of the smallest level >= each margin (margins above the top level are clipped)."""
        idx = np.searchsorted(self.levels_m, margin_m, side="left")
        return np.minimum(idx, len(self.levels_m) - 1).astype(np.int64)

    def classify(
        self,
        x: npt.NDArray[np.float64],
        y: npt.NDArray[np.float64],
        level: IntArray,
    ) -> Classified:
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
        relation = np.full(len(pair), BAND, dtype=np.int8)
        clear = self._pair_clear_m[pair] >= self.levels_m[level[position]]
        relation[clear & self._pair_within[pair]] = INSIDE
        relation[clear & self._pair_disjoint[pair]] = OUTSIDE
        test = ~clear | ~(self._pair_within[pair] | self._pair_disjoint[pair])
        if test.any():
            tp, tf = position[test], fence[test]
            lv = level[tp]
            px, py = x[tp], y[tp]
            decided = np.where(shapely.contains_xy(self._cores[lv, tf], px, py), INSIDE, OUTSIDE)
            rest = decided == OUTSIDE
            near = shapely.contains_xy(self._hulls[lv[rest], tf[rest]], px[rest], py[rest])
            decided[rest] = np.where(near, BAND, OUTSIDE)
            relation[test] = decided
        return Classified(position=position, fence=fence, relation=relation)
