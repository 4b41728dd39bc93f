"""The sowing subsidy (Presidential Decree 759 of 2019): 200 AZN × the crop's coefficient ×
hectares, with the coefficient tiered by area where the season's table says so, +10% for a
cooperative on more than 50 ha, then the monitoring cut; and the payout's split, a quarter
in cash and three quarters on the agrarian card.

Pure: amounts in qəpik (int), areas in square metres (int), coefficients in hundredths (int),
so that no step rounds except the one that turns a tier's product into qəpik.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

BASE_PER_HECTARE_QEPIK = 200_00
SQUARE_METRES_PER_HECTARE = 10_000
COOPERATIVE_THRESHOLD_SQUARE_METRES = 50 * SQUARE_METRES_PER_HECTARE
COOPERATIVE_BONUS_PERCENT = 10
CASH_PERCENT = 25


class Crop(enum.StrEnum):
    WHEAT = "WHEAT"
    BARLEY = "BARLEY"
    OTHER_CEREALS = "OTHER_CEREALS"
    RICE = "RICE"
    MAIZE = "MAIZE"
    SUNFLOWER = "SUNFLOWER"
    POTATOES = "POTATOES"
    VEGETABLES = "VEGETABLES"
    ALFALFA = "ALFALFA"
    COTTON = "COTTON"
    TOBACCO = "TOBACCO"
    SUGAR_BEET = "SUGAR_BEET"


# Sown once for several years: declared in the autumn or spring window only.
PERENNIAL_CROPS = frozenset({Crop.ALFALFA})


class Condition(enum.StrEnum):
    """When a row of the coefficient table applies."""

    ANY = "ANY"
    MAIN_SOWING = "MAIN_SOWING"
    REPEAT_SOWING = "REPEAT_SOWING"
    MODERN_IRRIGATION = "MODERN_IRRIGATION"
    NO_MODERN_IRRIGATION = "NO_MODERN_IRRIGATION"


@dataclass(frozen=True)
class Tier:
    """From `from_hectares` up to the next tier, the coefficient is `hundredths` / 100."""

    from_hectares: int
    hundredths: int


@dataclass(frozen=True)
class Coefficient:
    crop: Crop
    condition: Condition
    # First tier from 0 ha; empty when the crop is paid per tonne.
    tiers: tuple[Tier, ...]
    per_tonne: bool = False


@dataclass(frozen=True)
class SowingFacts:
    """What about a sowing the table's conditions ask."""

    repeat_sowing: bool
    modern_irrigation: bool


def coefficient_for(table: list[Coefficient], crop: Crop, facts: SowingFacts) -> Coefficient | None:
    """The row of `crop` whose condition the sowing meets; a specific row before ANY."""
    wanted = {
        Condition.REPEAT_SOWING if facts.repeat_sowing else Condition.MAIN_SOWING,
        Condition.MODERN_IRRIGATION if facts.modern_irrigation else Condition.NO_MODERN_IRRIGATION,
    }
    rows = [row for row in table if row.crop == crop]
    specific = next((row for row in rows if row.condition in wanted), None)
    return specific or next((row for row in rows if row.condition == Condition.ANY), None)


@dataclass(frozen=True)
class TierPart:
    area_square_metres: int
    hundredths: int
    amount_qepik: int


@dataclass(frozen=True)
class Subsidy:
    """A subsidy with each factor, as a quote and a declaration show it."""

    condition: Condition | None
    paid_area_square_metres: int
    tiers: tuple[TierPart, ...]
    cooperative_bonus_qepik: int
    monitoring_cut_percent: int
    total_qepik: int
    per_tonne: bool
    note: str

    @property
    def split(self) -> PayoutSplit:
        return payout_split(self.total_qepik)


def tier_parts(coefficient: Coefficient, area_square_metres: int) -> tuple[TierPart, ...]:
    """The area cut at each tier's threshold, each part priced and rounded to the qəpik."""
    parts = []
    for index, tier in enumerate(coefficient.tiers):
        start = tier.from_hectares * SQUARE_METRES_PER_HECTARE
        following = coefficient.tiers[index + 1] if index + 1 < len(coefficient.tiers) else None
        end = following.from_hectares * SQUARE_METRES_PER_HECTARE if following else area_square_metres
        area = max(0, min(area_square_metres, end) - start)
        if area == 0:
            continue
        # 200 AZN × coefficient × m² / 10 000, in qəpik.
        exact = Decimal(BASE_PER_HECTARE_QEPIK * tier.hundredths * area) / (100 * SQUARE_METRES_PER_HECTARE)
        parts.append(TierPart(area, tier.hundredths, _qepik(exact)))
    return tuple(parts)


def subsidy(
    coefficient: Coefficient | None,
    crop: Crop,
    area_square_metres: int,
    *,
    cooperative: bool,
    monitoring_cut_percent: int = 0,
    monitoring_note: str = "",
) -> Subsidy:
    """The subsidy of a sowing of `area_square_metres` (the monitored area once there is one)."""
    if coefficient is None or coefficient.per_tonne:
        note = (
            f"{crop.value} is paid per tonne of product sold, not per hectare: "
            "this declaration gets no sowing subsidy."
            if coefficient is not None
            else f"The season's coefficient table has no row for {crop.value}: no sowing subsidy."
        )
        return Subsidy(
            coefficient.condition if coefficient else None,
            area_square_metres,
            (),
            0,
            0,
            0,
            per_tonne=coefficient is not None,
            note=note,
        )
    parts = tier_parts(coefficient, area_square_metres)
    base = sum(part.amount_qepik for part in parts)
    bonus = 0
    if cooperative and area_square_metres > COOPERATIVE_THRESHOLD_SQUARE_METRES:
        bonus = _qepik(Decimal(base * COOPERATIVE_BONUS_PERCENT) / 100)
    before_cut = base + bonus
    total = before_cut - _qepik(Decimal(before_cut * monitoring_cut_percent) / 100)
    return Subsidy(
        coefficient.condition,
        area_square_metres,
        parts,
        bonus,
        monitoring_cut_percent,
        total,
        per_tonne=False,
        note=monitoring_note,
    )


@dataclass(frozen=True)
class PayoutSplit:
    cash_qepik: int
    card_qepik: int


def payout_split(total_qepik: int) -> PayoutSplit:
    """A quarter in cash (rounded half up to the qəpik), the rest on the card: the two add up
    to the total exactly."""
    cash = _qepik(Decimal(total_qepik * CASH_PERCENT) / 100)
    return PayoutSplit(cash, total_qepik - cash)


def _qepik(exact: Decimal) -> int:
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
