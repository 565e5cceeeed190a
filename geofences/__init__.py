"""Geofences shared by edge and cloud: GeoJSON fences, a vectorised index, crossing decisions."""
