"""A local metric projection: WGS84 degrees to metres east/north of a site's origin.

Fences span a site (at most tens of kilometres), so a tangent-plane projection that uses the
ellipsoid's radii of curvature at the origin is accurate to well under 0.1 % there and costs two
multiplications per coordinate, which matters when millions of positions go through it. Far
from the origin (hundreds of kilometres) the error grows; a site's fences and trackers stay near.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_WGS84_A = 6_378_137.0
_WGS84_E2 = 6.694_379_990_14e-3

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class LocalProjection:
    """Equirectangular projection about (lon0, lat0) scaled by the local radii of curvature."""

    lon0: float
    lat0: float
    m_per_deg_lon: float
    m_per_deg_lat: float

    @classmethod
    def at(cls, lon0: float, lat0: float) -> LocalProjection:
        if not (-180.0 <= lon0 <= 180.0 and -85.0 <= lat0 <= 85.0):
            raise ValueError(f"projection origin ({lon0}, {lat0}) is not a usable WGS84 position")
        phi = math.radians(lat0)
        w = math.sqrt(1.0 - _WGS84_E2 * math.sin(phi) ** 2)
        prime_vertical = _WGS84_A / w
        meridional = _WGS84_A * (1.0 - _WGS84_E2) / w**3
        return cls(
            lon0=lon0,
            lat0=lat0,
            m_per_deg_lon=math.radians(1.0) * prime_vertical * math.cos(phi),
            m_per_deg_lat=math.radians(1.0) * meridional,
        )

    def to_xy(self, lon: float, lat: float) -> tuple[float, float]:
        return ((lon - self.lon0) * self.m_per_deg_lon, (lat - self.lat0) * self.m_per_deg_lat)

    def to_xy_arrays(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        lon_a = np.asarray(lon, dtype=np.float64)
        lat_a = np.asarray(lat, dtype=np.float64)
        return (lon_a - self.lon0) * self.m_per_deg_lon, (lat_a - self.lat0) * self.m_per_deg_lat

    def to_lonlat(self, x: float, y: float) -> tuple[float, float]:
        return (self.lon0 + x / self.m_per_deg_lon, self.lat0 + y / self.m_per_deg_lat)

    def to_lonlat_arrays(self, x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        x_a = np.asarray(x, dtype=np.float64)
        y_a = np.asarray(y, dtype=np.float64)
        return self.lon0 + x_a / self.m_per_deg_lon, self.lat0 + y_a / self.m_per_deg_lat
