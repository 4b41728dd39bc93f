"""The conditions of a subsidy that are checked at declaration: an agrochemical analysis for a
sowing over 5 ha, an insurance policy for the listed crops on 10 ha or more."""

from __future__ import annotations

from dataclasses import dataclass

from services.agro.subsidy import SQUARE_METRES_PER_HECTARE, Crop

ANALYSIS_ABOVE_SQUARE_METRES = 5 * SQUARE_METRES_PER_HECTARE
INSURANCE_FROM_SQUARE_METRES = 10 * SQUARE_METRES_PER_HECTARE
# Crops under the state-subsidised agricultural insurance scheme (Agrarian Insurance Fund).
INSURED_CROPS = frozenset(
    {Crop.WHEAT, Crop.BARLEY, Crop.OTHER_CEREALS, Crop.RICE, Crop.MAIZE, Crop.SUNFLOWER, Crop.POTATOES}
)


@dataclass(frozen=True)
class MissingCondition:
    field: str
    message: str


def missing_conditions(
    crop: Crop, area_square_metres: int, *, analysis_reference: str, insurance_reference: str
) -> list[MissingCondition]:
    missing = []
    if area_square_metres > ANALYSIS_ABOVE_SQUARE_METRES and not analysis_reference.strip():
        missing.append(
            MissingCondition(
                "declaration.analysis_reference",
                "A sowing over 5 ha needs the reference of an agrochemical soil analysis.",
            )
        )
    if (
        crop in INSURED_CROPS
        and area_square_metres >= INSURANCE_FROM_SQUARE_METRES
        and not insurance_reference.strip()
    ):
        missing.append(
            MissingCondition(
                "declaration.insurance_reference",
                f"{crop.value} on 10 ha or more needs the reference of its insurance policy.",
            )
        )
    return missing
