"""Conversions between Python values and the protobuf types every contract uses
(google.protobuf.Timestamp, google.type.Date, asan.common.v1.Money)."""

from __future__ import annotations

from datetime import date, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2

from asan.common.v1 import money_pb2


def timestamp(value: datetime | None) -> Timestamp | None:
    """An aware datetime as a Timestamp; None stays unset."""
    if value is None:
        return None
    result = Timestamp()
    result.FromDatetime(value)
    return result


def money(minor_units: int | None, currency: str) -> money_pb2.Money | None:
    """Minor units (qəpik, cents) and an ISO 4217 code as Money; None stays unset."""
    if minor_units is None:
        return None
    return money_pb2.Money(minor_units=minor_units, currency_code=currency)


def proto_date(value: date | None) -> date_pb2.Date | None:
    if value is None:
        return None
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def to_date(value: date_pb2.Date) -> date:
    """Raises ValueError for an impossible date (or a partial one: year, month and day are all needed)."""
    return date(value.year, value.month, value.day)
