"""What a monitored area (satellite or field check) does to a subsidy. The difference is
|declared − monitored| / declared:

- up to 5%: paid on the monitored area (never more than declared);
- over 5% up to 20%: cut by 30%;
- over 20% up to 50%: nothing this season;
- over 50%: nothing this season, and the farmer's declarations of the next season are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

TOLERATED = Fraction(5, 100)
CUT = Fraction(20, 100)
FORFEIT = Fraction(50, 100)
CUT_PERCENT = 30


@dataclass(frozen=True)
class MonitoringOutcome:
    paid_area_square_metres: int
    cut_percent: int
    # The farmer may not declare in the next season.
    bans_next_season: bool
    note: str


def outcome(declared_square_metres: int, monitored_square_metres: int) -> MonitoringOutcome:
    if declared_square_metres <= 0:
        raise ValueError("a declaration has an area")
    difference = Fraction(abs(declared_square_metres - monitored_square_metres), declared_square_metres)
    paid = min(declared_square_metres, monitored_square_metres)
    shown = f"{float(difference * 100):.1f}%"
    if difference <= TOLERATED:
        return MonitoringOutcome(paid, 0, False, "")
    if difference <= CUT:
        note = (
            f"The monitored area differs from the declared by {shown} (over 5%): the subsidy is cut by 30%."
        )
        return MonitoringOutcome(paid, CUT_PERCENT, False, note)
    if difference <= FORFEIT:
        note = f"The monitored area differs from the declared by {shown} (over 20%): no subsidy this season."
        return MonitoringOutcome(paid, 100, False, note)
    note = (
        f"The monitored area differs from the declared by {shown} (over 50%): no subsidy this "
        "season, and no declarations next season."
    )
    return MonitoringOutcome(paid, 100, True, note)
