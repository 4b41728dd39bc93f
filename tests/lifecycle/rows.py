"""Rows for every table of a migrated database, made from the schema as it stands at a revision
(reflected, so that it fits whichever revision the database is at): each column gets a value of
its type and length, unique where a key needs it, foreign keys pointing at rows made before."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
)

ROWS_PER_TABLE = 3
SKIPPED = {"alembic_version"}
Row = dict[str, Any]


def reflect(engine: Engine) -> MetaData:
    metadata = MetaData()
    metadata.reflect(engine)
    return metadata


def _text(column: str, token: str, length: int | None) -> str:
    """A value that reads like the column's: a FIN, a currency, an e-mail, else the token first
    (so that it stays unique however short the column)."""
    if column.endswith("fin") and (length or 7) >= 7:
        return f"{token.upper():0>7}"[-7:]
    if column in ("currency", "fee_currency", "nationality", "country_code") and length == 3:
        return token.upper()[:3].ljust(3, "X")
    value = f"{token}@example.az" if "email" in column else f"{token}-{column}"
    return value[:length] if length else value


def _value(table: Table, column: str, token: str, number: int) -> object:
    kind = table.c[column].type
    if isinstance(kind, Boolean):
        return number % 2 == 0
    if isinstance(kind, Integer):
        return 100_000 + number
    if isinstance(kind, Float):
        return 40.0 + number / 1000
    if isinstance(kind, DateTime):
        return datetime(2026, 3, 2, 9, 30, tzinfo=UTC) + timedelta(minutes=number)
    if isinstance(kind, Date):
        return date(1990, 1, 1) + timedelta(days=number)
    if isinstance(kind, LargeBinary):
        return f"{token}:{column}".encode()
    if isinstance(kind, JSON):
        return {"reference": token, "column": column}
    if isinstance(kind, String | Text):
        return _text(column, token, getattr(kind, "length", None))
    raise TypeError(f"{table.name}.{column}: no sample value for {kind!r}")


def fill(engine: Engine, metadata: MetaData, batch: int) -> dict[str, list[Row]]:
    """Inserts ROWS_PER_TABLE rows into every table of `metadata` (the database's, reflected);
    `batch` keeps them apart from the rows of another call. Returns what it inserted, by table."""
    made: dict[str, list[Row]] = {}
    with engine.begin() as connection:
        for table in metadata.sorted_tables:
            if table.name in SKIPPED:
                continue
            rows = []
            for index in range(ROWS_PER_TABLE):
                number = batch * 100 + index
                token = f"t{batch}{index}"
                row = {column.name: _value(table, column.name, token, number) for column in table.columns}
                for key in table.foreign_key_constraints:
                    parent = made[key.referred_table.name][index]
                    for element in key.elements:
                        row[element.parent.name] = parent[element.column.name]
                rows.append(row)
            connection.execute(insert(table), rows)
            made[table.name] = rows
    return made


def contents(engine: Engine, metadata: MetaData) -> dict[str, list[Row]]:
    """Every table's rows (alembic_version aside), in a stable order."""
    found = {}
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            if table.name not in SKIPPED:
                rows = [dict(row._mapping) for row in connection.execute(select(table))]
                found[table.name] = sorted(rows, key=canonical)
    return found


def canonical(row: Row) -> str:
    return json.dumps(row, sort_keys=True, default=repr)


def columns(metadata: MetaData) -> dict[str, set[str]]:
    """Each table's columns (alembic_version aside)."""
    return {table.name: set(table.c.keys()) for table in metadata.sorted_tables if table.name not in SKIPPED}


def projected(rows: dict[str, list[Row]], onto: dict[str, set[str]]) -> dict[str, list[Row]]:
    """`rows` cut to the tables and columns of `onto` (a schema at another revision)."""
    cut = {}
    for table, table_rows in rows.items():
        if table in onto:
            keep = onto[table]
            cut[table] = sorted(
                ({k: v for k, v in row.items() if k in keep} for row in table_rows), key=canonical
            )
    return cut
