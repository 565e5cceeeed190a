"""Fences as segments plus a radius, for exact signed distances computed in bulk with numpy.

Every fence kind reduces to one form. A polygon (holes and parts included) is its boundary
edges, and a position's signed distance is + (inside) or - (outside) its distance to the
nearest edge, the side decided by the crossing-number rule over the same edges. A circle is
one degenerate segment (its centre) and a corridor its centre line; for both the signed
distance is ``radius - distance``. A fence's ``buffer_m`` adds to the radius. All of these are
1-Lipschitz: moving one metre changes the signed distance by at most one metre, which is what
lets the index decide whole grid cells at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class FenceOutline:
    """Segments (ax, ay) -> (bx, by) in local metres, a radius, and whether it is a polygon."""

    segments: FloatArray  # shape (n, 4)
    radius_m: float
    polygonal: bool

    @classmethod
    def of_polygon(cls, area: BaseGeometry, buffer_m: float = 0.0) -> FenceOutline:
        edges = []
        for ring in shapely.get_rings(shapely.get_parts(area)):
            xy = shapely.get_coordinates(ring)
            edges.append(np.column_stack([xy[:-1], xy[1:]]))
        return cls(np.vstack(edges), buffer_m, polygonal=True)

    @classmethod
    def of_skeleton(cls, skeleton: BaseGeometry, radius_m: float) -> FenceOutline:
        """A circle (Point) or corridor (LineString / MultiLineString) of the given radius."""
        parts = []
        for part in shapely.get_parts(skeleton):
            xy = shapely.get_coordinates(part)
            if len(xy) == 1:
                xy = np.vstack([xy, xy])
            parts.append(np.column_stack([xy[:-1], xy[1:]]))
        return cls(np.vstack(parts), radius_m, polygonal=False)


class OutlineSet:
    """Many outlines packed into flat arrays."""

    def __init__(self, outlines: Sequence[FenceOutline]) -> None:
        counts = np.array([len(o.segments) for o in outlines], dtype=np.int64)
        self.start = np.cumsum(counts) - counts
        self.count = counts
        seg = np.vstack([o.segments for o in outlines])
        self.ax, self.ay, self.bx, self.by = (np.ascontiguousarray(seg[:, i]) for i in range(4))
        dx, dy = self.bx - self.ax, self.by - self.ay
        self.dx, self.dy = dx, dy
        len2 = dx * dx + dy * dy
        self.inv_len2 = np.divide(1.0, len2, out=np.zeros_like(len2), where=len2 > 0)
        self.radius = np.array([o.radius_m for o in outlines], dtype=np.float64)
        self.polygonal = np.array([o.polygonal for o in outlines], dtype=np.bool_)

    def signed_distance(self, fence: IntArray, x: FloatArray, y: FloatArray) -> FloatArray:
        """Signed distance (metres, + inside) of position (x[i], y[i]) to fence[i]."""
        if len(fence) == 0:
            return np.empty(0, np.float64)
        counts = self.count[fence]
        first = np.cumsum(counts) - counts
        pair = np.repeat(np.arange(len(fence), dtype=np.int64), counts)
        seg = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(first, counts)
        seg += np.repeat(self.start[fence], counts)
        px, py = x[pair], y[pair]
        ax, ay, dx, dy = self.ax[seg], self.ay[seg], self.dx[seg], self.dy[seg]
        rx, ry = px - ax, py - ay
        t = np.clip((rx * dx + ry * dy) * self.inv_len2[seg], 0.0, 1.0)
        ex, ey = rx - t * dx, ry - t * dy
        nearest = np.sqrt(np.minimum.reduceat(ex * ex + ey * ey, first))
        polygonal = self.polygonal[fence]
        sign = -np.ones(len(fence))
        if polygonal.any():
            # Crossing number: edges straddling the position's latitude, crossed to its east.
            by = ay + dy
            straddles = (ay > py) != (by > py)
            with np.errstate(divide="ignore", invalid="ignore"):
                east = px < ax + dx * (py - ay) / dy
            crossings = np.add.reduceat((straddles & east).astype(np.int32), first)
            sign = np.where(polygonal & (crossings % 2 == 1), 1.0, -1.0)
            return np.where(polygonal, sign * nearest, -nearest) + self.radius[fence]
        return self.radius[fence] - nearest
