"""Contours: what is refused and why, geodesic areas, and what counts as an overlap."""

from __future__ import annotations

import json

import pytest

from services.agro.geometry import (
    OVERLAP_TOLERANCE_SQUARE_METRES,
    ContourError,
    area_outside,
    overlap_area,
    overlaps,
    read_contour,
)


def square(lon: float, lat: float, side: float) -> str:
    ring = [[lon, lat], [lon + side, lat], [lon + side, lat + side], [lon, lat + side], [lon, lat]]
    return json.dumps({"type": "Polygon", "coordinates": [ring]})


def test_area_is_geodesic_square_metres() -> None:
    # 0.01° × 0.01° near Saatlı (39.9° N): about 1 112 m × 853 m.
    area = read_contour(square(48.3, 39.9, 0.01)).area_square_metres
    assert 945_000 < area < 955_000


def test_a_feature_holding_a_polygon_is_read() -> None:
    feature = json.dumps(
        {"type": "Feature", "properties": {}, "geometry": json.loads(square(48.3, 39.9, 0.01))}
    )
    assert read_contour(feature).area_square_metres > 0


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "Not JSON"),
        (json.dumps({"type": "Point", "coordinates": [48.3, 39.9]}), "Polygon is expected"),
        (
            json.dumps(
                {
                    "type": "Polygon",
                    "coordinates": [
                        [[48.3, 39.9], [48.31, 39.91], [48.31, 39.9], [48.3, 39.91], [48.3, 39.9]]
                    ],
                }
            ),
            "Self-intersection",
        ),
        (square(13.4, 52.5, 0.01), "outside Azerbaijan"),
        (square(39.9, 48.3, 0.01), "longitude first"),
        (square(48.3, 39.9, 0.00005), "minimum"),
        (square(48.3, 39.9, 0.2), "not one field"),
    ],
)
def test_bad_contours_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ContourError, match=reason):
        read_contour(text)


def test_touching_contours_do_not_overlap() -> None:
    left = read_contour(square(48.3, 39.9, 0.01))
    right = read_contour(square(48.31, 39.9, 0.01))
    assert overlap_area(left.polygon, right.polygon) == 0
    assert not overlaps(left.polygon, right.polygon)


def test_a_sliver_under_the_tolerance_is_not_an_overlap() -> None:
    left = read_contour(square(48.3, 39.9, 0.01))
    # Shifted back by 0.0000004° of longitude: a strip of about 3.4 cm × 1 112 m, some 38 m².
    right = read_contour(square(48.3099996, 39.9, 0.01))
    shared = overlap_area(left.polygon, right.polygon)
    assert 0 < shared <= OVERLAP_TOLERANCE_SQUARE_METRES
    assert not overlaps(left.polygon, right.polygon)


def test_a_real_overlap_is_one() -> None:
    left = read_contour(square(48.3, 39.9, 0.01))
    right = read_contour(square(48.305, 39.9, 0.01))
    assert overlap_area(left.polygon, right.polygon) > 400_000
    assert overlaps(left.polygon, right.polygon)


def test_a_sowing_inside_its_parcel_has_nothing_outside() -> None:
    parcel = read_contour(square(48.3, 39.9, 0.01))
    assert area_outside(read_contour(square(48.301, 39.901, 0.005)), parcel) == 0
    assert area_outside(read_contour(square(48.308, 39.9, 0.005)), parcel) > 100_000
