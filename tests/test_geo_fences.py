"""Loading fences: the demo site, every geometry kind, and refusal of bad fences with reasons."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import shapely

from geofences.fences import FenceKind, InvalidGeofence, load_site, parse_feature_collection
from geofences.index import BAND, INSIDE, OUTSIDE, FenceIndex
from geofences.outline import FenceOutline
from geofences.schedule import parse_schedule
from tests.geo_fixtures import square_site


def test_demo_site_is_a_real_looking_warehouse_site():
    fences = load_site("demo-site")
    assert fences.site == "demo-site"
    kinds = {f.id: f.kind for f in fences.fences}
    assert kinds["warehouse-1"] is FenceKind.WAREHOUSE
    assert [f.id for f in fences.guarding("LOT-A") if f.kind is FenceKind.PLEDGE_ZONE] == [
        "pz-lot-a"
    ]
    assert [f.id for f in fences.guarding("LOT-B") if f.kind is FenceKind.PLEDGE_ZONE] == [
        "pz-lot-b"
    ]
    minx, miny, maxx, maxy = fences.by_id("warehouse-1").area.bounds
    assert maxx - minx == pytest.approx(120, abs=1.0)
    assert maxy - miny == pytest.approx(60, abs=1.0)
    # The yard has the building as a hole: the middle of the building is not in the yard.
    building = fences.by_id("warehouse-1").area.centroid
    assert not fences.by_id("yard").area.contains(building)
    assert fences.projection.lon0 == pytest.approx(121.59, abs=0.01)


def _feature(fid, geometry, **props):
    return {
        "type": "Feature",
        "properties": {"id": fid, "kind": "yard", **props},
        "geometry": geometry,
    }


def test_circle_and_corridor_and_multipolygon_have_metric_sizes():
    extra = [
        _feature("circle", {"type": "Point", "coordinates": [121.6, 31.36]}, radius_m=50),
        _feature(
            "road",
            {"type": "LineString", "coordinates": [[121.6, 31.36], [121.6, 31.37]]},
            kind="route",
            width_m=20,
        ),
        _feature(
            "two-sheds",
            {
                "type": "MultiPolygon",
                "coordinates": [
                    [
                        [
                            [121.61, 31.36],
                            [121.611, 31.36],
                            [121.611, 31.361],
                            [121.61, 31.361],
                            [121.61, 31.36],
                        ]
                    ],
                    [
                        [
                            [121.62, 31.36],
                            [121.621, 31.36],
                            [121.621, 31.361],
                            [121.62, 31.361],
                            [121.62, 31.36],
                        ]
                    ],
                ],
            },
        ),
    ]
    fences = parse_feature_collection(square_site(extra))
    assert fences.by_id("circle").area.area == pytest.approx(np.pi * 50**2, rel=0.01)
    # 0.01 degrees of latitude is about 1109 m; a 20 m corridor with round ends.
    road = fences.by_id("road").area
    assert road.area == pytest.approx(1109 * 20 + np.pi * 10**2, rel=0.01)
    assert fences.by_id("two-sheds").area.geom_type == "MultiPolygon"


def test_buffer_enlarges_the_fence():
    data = square_site()
    bigger = copy.deepcopy(data)
    bigger["features"][0]["properties"]["buffer_m"] = 10
    plain = parse_feature_collection(data).by_id("zone").area
    grown = parse_feature_collection(bigger).by_id("zone").area
    assert grown.area == pytest.approx(plain.area + 10 * plain.length + np.pi * 100, rel=0.01)


def test_self_intersecting_polygon_is_refused_with_id_and_reason():
    bowtie = _feature(
        "bowtie",
        {
            "type": "Polygon",
            "coordinates": [
                [
                    [121.6, 31.36],
                    [121.601, 31.361],
                    [121.601, 31.36],
                    [121.6, 31.361],
                    [121.6, 31.36],
                ]
            ],
        },
    )
    with pytest.raises(InvalidGeofence) as caught:
        parse_feature_collection(square_site([bowtie]))
    assert caught.value.feature_id == "bowtie"
    assert "Self-intersection" in caught.value.reason


@pytest.mark.parametrize(
    ("geometry", "props", "reason"),
    [
        ({"type": "Point", "coordinates": [121.6, 31.36]}, {}, "needs radius_m"),
        ({"type": "LineString", "coordinates": [[121.6, 31.36], [121.6, 31.37]]}, {}, "width_m"),
        ({"type": "Point", "coordinates": [121.6, 31.36]}, {"radius_m": -3}, "radius_m"),
        ({"type": "Point", "coordinates": [181.0, 31.36]}, {"radius_m": 3}, "WGS84"),
        (
            {"type": "Point", "coordinates": [121.6, 31.36]},
            {"radius_m": 3, "bufer_m": 1},
            "bufer_m",
        ),
        ({"type": "Point", "coordinates": [121.6, 31.36]}, {"radius_m": 3, "kind": "moat"}, "kind"),
        ({"type": "Polygon", "coordinates": [[[121.6, 31.36]]]}, {}, "geometry"),
    ],
)
def test_bad_fences_are_refused_with_a_reason(geometry, props, reason):
    with pytest.raises(InvalidGeofence) as caught:
        parse_feature_collection(square_site([_feature("bad", geometry, **props)]))
    assert caught.value.feature_id == "bad"
    assert reason in str(caught.value)


def test_duplicate_ids_and_missing_site_are_refused():
    data = square_site()
    data["features"].append(copy.deepcopy(data["features"][0]))
    with pytest.raises(InvalidGeofence, match="more than one"):
        parse_feature_collection(data)
    nameless = square_site()
    del nameless["site"]
    with pytest.raises(ValueError, match="site"):
        parse_feature_collection(nameless)


def test_styling_keys_from_geojson_editors_are_accepted():
    data = square_site()
    data["features"][0]["properties"].update({"stroke": "#555", "fill-opacity": 0.4})
    assert parse_feature_collection(data).by_id("zone").lots == ("LOT-1",)


def test_schedule_windows_including_overnight():
    schedule = parse_schedule({"timezone": "Asia/Shanghai", "open": ["mon-fri 22:00-06:00"]})
    # 2026-06-01 is a Monday. 23:00 Shanghai Monday = 15:00 UTC Monday.
    monday_23 = 1_780_326_000_000_000
    assert schedule.is_open(monday_23)
    assert not schedule.is_open(monday_23 - 10 * 3600 * 1_000_000)  # Monday 13:00
    with pytest.raises(ValueError, match="like"):
        parse_schedule({"open": ["weekdays 7-19"]})


def test_index_agrees_with_shapely_for_random_positions():
    rng = np.random.default_rng(5)
    square = shapely.box(0, 0, 200, 100)
    centre = shapely.Point(300, 50)
    road = shapely.LineString([(0, 150), (400, 300)])
    holed = shapely.Polygon(
        [(500, 0), (700, 0), (700, 200), (500, 200)],
        [[(550, 50), (650, 50), (650, 150), (550, 150)]],
    )
    areas = [square, centre.buffer(60, quad_segs=64), road.buffer(10, quad_segs=64), holed]
    outlines = [
        FenceOutline.of_polygon(square),
        FenceOutline.of_skeleton(centre, 60),
        FenceOutline.of_skeleton(road, 10),
        FenceOutline.of_polygon(holed),
    ]
    index = FenceIndex(areas, outlines, max_margin_m=40)
    n = 20_000
    x, y = rng.uniform(-100, 800, n), rng.uniform(-100, 400, n)
    margin = rng.choice([0.0, 4.0, 10.0, 30.0], n)
    found = index.classify(x, y, margin)
    relation = np.full((n, len(areas)), OUTSIDE, np.int8)
    relation[found.position, found.fence] = found.relation
    points = shapely.points(x, y)
    for f, area in enumerate(areas):
        inside = shapely.contains(area, points)
        distance = shapely.distance(area.boundary, points)
        # 0.05 m: the shapely circle and corridor are 256-gons, the index's are exact.
        clear = distance > margin + 0.05
        assert (relation[inside & clear, f] == INSIDE).all()
        assert (relation[~inside & clear, f] == OUTSIDE).all()
        assert (relation[distance < margin - 0.05, f] == BAND).all()
