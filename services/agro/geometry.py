"""Contours on the map: GeoJSON polygons in WGS 84 (longitude, latitude), read and checked with
shapely, their areas measured on the WGS 84 ellipsoid with pyproj.

Pure: no database. Overlap between declarations is found in two steps, the candidates whose
bounding boxes meet (an index in the database, `queries.overlapping_candidates`), then the exact
intersection of each candidate here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import shapely
from pyproj import Geod
from shapely.geometry import Polygon, shape
from shapely.validation import explain_validity

GEOD = Geod(ellps="WGS84")
# Azerbaijan's extent, Nakhchivan included (longitude 44.77-50.63 E, latitude 38.39-41.91 N).
# A contour must lie inside it; the finer border is the land registry's to check.
AZERBAIJAN = shapely.box(44.77, 38.39, 50.63, 41.91)
MIN_AREA_SQUARE_METRES = 100
# A field, not a district: the bounding-box search in the database relies on this bound.
MAX_EXTENT_DEGREES = 0.05
MAX_VERTICES = 2_000
MAX_GEOJSON_CHARACTERS = 200_000
# Overlaps up to this area are slivers of two surveys of one boundary, not double claims.
OVERLAP_TOLERANCE_SQUARE_METRES = 50


# Columns of longitude a declaration's box is filed under (by its western edge), for the search.
CELLS_PER_DEGREE = 100


def lon_cell(longitude: float) -> int:
    return math.floor(longitude * CELLS_PER_DEGREE)


class ContourError(ValueError):
    """The contour cannot be used; the message says why, for the farmer."""


@dataclass(frozen=True)
class Contour:
    polygon: Polygon
    area_square_metres: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(min longitude, min latitude, max longitude, max latitude)."""
        min_lon, min_lat, max_lon, max_lat = self.polygon.bounds
        return min_lon, min_lat, max_lon, max_lat


def geodesic_area(polygon: Polygon) -> int:
    area, _perimeter = GEOD.geometry_area_perimeter(polygon)
    return round(abs(area))


def read_contour(text: str) -> Contour:
    """A GeoJSON Polygon (a bare geometry, or a Feature holding one), checked: valid, inside
    Azerbaijan, at least 100 m², at most 0.05° across."""
    if len(text) > MAX_GEOJSON_CHARACTERS:
        raise ContourError(f"The contour is over {MAX_GEOJSON_CHARACTERS} characters.")
    try:
        document = json.loads(text)
    except ValueError:
        raise ContourError("Not JSON: a GeoJSON Polygon is expected.") from None
    if isinstance(document, dict) and document.get("type") == "Feature":
        document = document.get("geometry")
    if not isinstance(document, dict) or document.get("type") != "Polygon":
        raise ContourError('A GeoJSON Polygon is expected ({"type": "Polygon", "coordinates": [...]}).')
    try:
        polygon = shape(document)
    except (ValueError, TypeError, AttributeError, IndexError, shapely.errors.GEOSException) as error:
        raise ContourError(f"The polygon's coordinates cannot be read: {error}.") from None
    if not isinstance(polygon, Polygon) or polygon.is_empty:
        raise ContourError("The polygon is empty.")
    if shapely.get_num_coordinates(polygon) > MAX_VERTICES:
        raise ContourError(f"The polygon has over {MAX_VERTICES} vertices.")
    if polygon.has_z:
        raise ContourError("Give longitude and latitude only, no altitude.")
    if not polygon.is_valid:
        raise ContourError(f"The polygon is not valid: {explain_validity(polygon)}.")
    if not AZERBAIJAN.contains(polygon):
        raise ContourError(
            "The polygon lies outside Azerbaijan; coordinates are longitude first, then latitude (WGS 84)."
        )
    min_lon, min_lat, max_lon, max_lat = polygon.bounds
    if max(max_lon - min_lon, max_lat - min_lat) > MAX_EXTENT_DEGREES:
        raise ContourError(f"The polygon spans over {MAX_EXTENT_DEGREES}° (about 5 km): not one field.")
    area = geodesic_area(polygon)
    if area < MIN_AREA_SQUARE_METRES:
        raise ContourError(f"The polygon's area is {area} m², under the {MIN_AREA_SQUARE_METRES} m² minimum.")
    return Contour(polygon, area)


def area_outside(inner: Contour, outer: Contour) -> int:
    """Square metres of `inner` that lie outside `outer`."""
    rest = inner.polygon.difference(outer.polygon)
    return 0 if rest.is_empty else _geodesic_area_of(rest)


def overlap_area(one: Polygon, other: Polygon) -> int:
    """Square metres shared by two contours: 0 for contours that only touch."""
    if not one.intersects(other):
        return 0
    shared = one.intersection(other)
    return 0 if shared.is_empty else _geodesic_area_of(shared)


def overlaps(one: Polygon, other: Polygon) -> bool:
    return overlap_area(one, other) > OVERLAP_TOLERANCE_SQUARE_METRES


def _geodesic_area_of(geometry: shapely.Geometry) -> int:
    """Of polygons only: a line or a point where two contours touch has no area."""
    polygons = [g for g in shapely.get_parts(geometry) if isinstance(g, Polygon)]
    return sum(geodesic_area(p) for p in polygons)
