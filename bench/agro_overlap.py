"""Declaring a sowing with its overlap check, against 10,000 and 100,000 standing declarations
of the same window, beside a baseline measured in the same run: the same declarations
against an empty window.

    .venv/bin/python bench/agro_overlap.py [--declarations 200] [--database-url URL]

Each measured call is agro's whole declaring unit (`services.agro.declaring.declare`, one
transaction: farmer and parcel, window, ban, conditions, contour inside the parcel, eligible
area, the window's lock, the bounding-box search and the exact intersections, the insert and
its outbox event), on a SQLite file by default or on the PostgreSQL of `--database-url`. The
gRPC layer is left out: it costs the same whatever the number of declarations.

The standing declarations are a grid of 0.003° squares (about 8.5 ha) 0.004° apart near
Ganja, seeded directly in the table; every 50th cell is left empty, and each measured
declaration fills one of those holes, so its bounding box meets its eight neighbours' and the
exact check runs on each of them, as in a village of small fields. For contrast, the same
check done without the index (every contour of the window read and intersected) is measured
on a few declarations at 10,000.

Not a test: run it by hand and write the figures into README.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from services.agro import declaring
from services.agro.geometry import lon_cell, read_contour
from services.agro.requests import NewDeclaration
from services.agro.service import definition
from services.agro.subsidy import Crop
from services.agro.tables import DeclarationRow, FarmerRow, ParcelRow
from services.runtime.db import Database
from services.runtime.migrations import upgrade

TODAY = date(2026, 10, 15)  # a working day in the autumn window
NOW = datetime(2026, 10, 15, 8, 0, tzinfo=UTC)
FIN = "5ZK3T9P"
WEST, SOUTH = 46.0, 40.2  # near Ganja
SIDE, PITCH = 0.003, 0.004
HOLE_EVERY = 50


def square(lon: float, lat: float, side: float = SIDE) -> str:
    ring = [[lon, lat], [lon + side, lat], [lon + side, lat + side], [lon, lat + side], [lon, lat]]
    return json.dumps({"type": "Polygon", "coordinates": [ring]})


def cells(count: int, wanted_holes: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(standing, holes): `count` filled cells of a square grid, and `wanted_holes` empty ones:
    those left in the grid, then as many as needed in a row of their own north of it."""
    columns = int((count * (1 + 1 / HOLE_EVERY)) ** 0.5) + 1
    standing: list[tuple[float, float]] = []
    holes: list[tuple[float, float]] = []
    index = 0
    while len(standing) < count:
        spot = (WEST + (index % columns) * PITCH, SOUTH + (index // columns) * PITCH)
        (holes if index % HOLE_EVERY == HOLE_EVERY - 1 else standing).append(spot)
        index += 1
    north = SOUTH + (index // columns + 2) * PITCH
    holes += [(WEST + (n % columns) * PITCH, north + (n // columns) * PITCH) for n in range(wanted_holes)]
    return standing, holes[:wanted_holes]


def prepare(database_url: str, count: int, measured: int) -> tuple[Database, list[tuple[str, str]]]:
    """A migrated database with one farmer, `count` standing declarations and `measured`
    parcels (one per hole) ready to be declared; returns the parcels' ids and contours."""
    upgrade(database_url, definition.migrations)
    database = Database(database_url, threads=1)
    standing, holes = cells(count, measured)
    seed_id = str(uuid.uuid4())

    def seed(session: Session) -> list[tuple[str, str]]:
        session.add(
            FarmerRow(
                fin=FIN,
                kind="INDIVIDUAL",
                display_name="Bench",
                cooperative_voen=None,
                member_count=0,
                iban="AZ21NABZ00000000137010001944",
                input_card_reference="AQRAR-BENCH",
                registered_at=NOW,
            )
        )
        # One parcel holds the seeded declarations: the overlap check does not look at parcels.
        session.add(_parcel(seed_id, "BENCH-SEED", square(WEST, SOUTH, 0.001), NOW))
        session.flush()
        rows = [_standing_row(seed_id, n, lon, lat) for n, (lon, lat) in enumerate(standing)]
        for start in range(0, len(rows), 10_000):
            session.execute(insert(DeclarationRow), rows[start : start + 10_000])
        parcels = []
        for number, (lon, lat) in enumerate(holes):
            parcel_id = str(uuid.uuid4())
            contour = square(lon, lat)
            session.add(_parcel(parcel_id, f"BENCH-{number}", contour, NOW))
            parcels.append((parcel_id, contour))
        return parcels

    parcels = database.run_sync(seed)
    if database.is_postgresql:
        # What autovacuum does soon after a bulk load in a live database: without statistics,
        # the planner reads a freshly seeded table as if it were empty.
        with database.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE declarations")
    return database, parcels


def _parcel(parcel_id: str, registry_number: str, contour: str, now: datetime) -> ParcelRow:
    area = read_contour(contour).area_square_metres
    return ParcelRow(
        id=parcel_id,
        farmer_fin=FIN,
        registry_number=registry_number,
        land_document="BENCH",
        district="GANJA",
        contour_geojson=contour,
        area_m2=area,
        eligible_m2=area,
        created_at=now,
    )


def _standing_row(parcel_id: str, index: int, lon: float, lat: float) -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "number": f"AGR-2026-S{index:07d}",
        "farmer_fin": FIN,
        "parcel_id": parcel_id,
        "district": "GANJA",
        "crop": "BARLEY",
        "season_year": 2026,
        "campaign": "AUTUMN",
        "contour_geojson": square(lon, lat),
        "area_m2": 85_000,
        "min_lon": lon,
        "min_lat": lat,
        "max_lon": lon + SIDE,
        "max_lat": lat + SIDE,
        "lon_cell": lon_cell(lon),
        "modern_irrigation": False,
        "analysis_reference": "A",
        "insurance_reference": "",
        "status": "SUBMITTED",
        "subsidy": b"",
        "subsidy_qepik": 0,
        "declared_at": NOW,
    }


def new_declaration(parcel_id: str, contour: str) -> NewDeclaration:
    return NewDeclaration(
        parcel_id=parcel_id,
        crop=Crop.BARLEY,
        contour_geojson=contour,
        contour=read_contour(contour),
        modern_irrigation=False,
        analysis_reference="AKT-1",
        insurance_reference="",
    )


def time_declarations(
    database: Database, parcels: list[tuple[str, str]], declare: Callable[[Session, NewDeclaration], None]
) -> list[float]:
    """Seconds per declaration, each its own transaction."""
    timings = []
    for parcel_id, contour in parcels:
        new = new_declaration(parcel_id, contour)
        started = time.perf_counter()
        database.run_sync(lambda session, new=new: declare(session, new))  # type: ignore[misc]
        timings.append(time.perf_counter() - started)
    return timings


def declare_indexed(session: Session, new: NewDeclaration) -> None:
    declaring.declare(session, FIN, new, declaration_id=str(uuid.uuid4()), today=TODAY, now=NOW)


def declare_scanning(session: Session, new: NewDeclaration) -> None:
    """The overlap check without the bounding-box search: every contour of the window read and
    intersected (what agro would do without the index), then the same declaring unit."""
    for (contour,) in session.execute(
        select(DeclarationRow.contour_geojson).where(
            DeclarationRow.season_year == 2026, DeclarationRow.campaign == "AUTUMN"
        )
    ):
        if new.contour.polygon.intersects(read_contour(contour).polygon):
            raise AssertionError("the holes overlap nothing")
    declare_indexed(session, new)


def summary(label: str, timings: list[float], baseline_ms: float | None) -> str:
    ordered = sorted(timings)
    median = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    ratio = f"{median / baseline_ms:.2f}" if baseline_ms else "1.00"
    return f"| {label} | {len(timings)} | {median:.2f} ms | {p99:.2f} ms | {1000 / median:.0f} | {ratio} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--declarations", type=int, default=200, help="declarations measured per size")
    parser.add_argument("--scanned", type=int, default=10, help="declarations measured without the index")
    parser.add_argument("--database-url", help="an empty PostgreSQL database per size is made from it")
    args = parser.parse_args()
    print(
        f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}, {date.today()}"
    )
    print("| standing declarations | declared | median | p99 | declarations/s | × baseline |")
    print("|---|---|---|---|---|---|")
    directory = Path(tempfile.mkdtemp(prefix="agro-bench-"))
    baseline_ms: float | None = None
    for count in (0, 10_000, 100_000):
        url = args.database_url or f"sqlite:///{directory / f'agro-{count}.sqlite3'}"
        if args.database_url:
            url = _fresh_postgres(args.database_url, count)
        seeded = time.perf_counter()
        database, parcels = prepare(url, count, args.declarations + args.scanned)
        seconds = time.perf_counter() - seeded
        timings = time_declarations(database, parcels[: args.declarations], declare_indexed)
        label = f"{count:,} (baseline)" if count == 0 else f"{count:,}"
        line = summary(label, timings, baseline_ms)
        if baseline_ms is None:
            baseline_ms = statistics.median(timings) * 1000
        print(line + f"  <!-- seeded in {seconds:.0f} s -->")
        if count == 10_000:
            scanned = time_declarations(database, parcels[args.declarations :], declare_scanning)
            print(summary(f"{count:,}, without the index", scanned, baseline_ms))
        database.close()
        if args.database_url:
            _drop_postgres(args.database_url, url)


def _drop_postgres(server_url: str, url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def _fresh_postgres(server_url: str, count: int) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"agro_bench_{count}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


if __name__ == "__main__":
    main()
