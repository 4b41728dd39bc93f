"""The subsidy, window, condition, monitoring and payout rules, each at its boundary."""

from __future__ import annotations

from datetime import date

import pytest

from services.agro.accounts import bank_code, is_azerbaijani_iban
from services.agro.conditions import missing_conditions
from services.agro.monitoring import outcome
from services.agro.subsidy import (
    Coefficient,
    Condition,
    Crop,
    SowingFacts,
    Tier,
    coefficient_for,
    payout_split,
    subsidy,
)
from services.agro.windows import Campaign, WindowRefusal, declaration_window, last_working_day_of_december
from services.runtime.holidays_az import public_holidays

HA = 10_000
HOLIDAYS = set(public_holidays([2026, 2027]))
WHEAT = Coefficient(Crop.WHEAT, Condition.ANY, (Tier(0, 100), Tier(20, 80)))
RICE_MAIN = Coefficient(Crop.RICE, Condition.MAIN_SOWING, (Tier(0, 190),))
RICE_REPEAT = Coefficient(Crop.RICE, Condition.REPEAT_SOWING, (Tier(0, 60),))
MAIZE_IRRIGATED = Coefficient(Crop.MAIZE, Condition.MODERN_IRRIGATION, (Tier(0, 80),))
MAIZE_PLAIN = Coefficient(Crop.MAIZE, Condition.NO_MODERN_IRRIGATION, (Tier(0, 50),))
COTTON = Coefficient(Crop.COTTON, Condition.ANY, (), per_tonne=True)
TABLE = [WHEAT, RICE_MAIN, RICE_REPEAT, MAIZE_IRRIGATED, MAIZE_PLAIN, COTTON]
MAIN = SowingFacts(repeat_sowing=False, modern_irrigation=False)


# --- Subsidy -----------------------------------------------------------------------------------


def test_wheat_on_exactly_20_ha_is_all_at_the_first_tier() -> None:
    quote = subsidy(WHEAT, Crop.WHEAT, 20 * HA, cooperative=False)
    assert [(p.area_square_metres, p.hundredths) for p in quote.tiers] == [(20 * HA, 100)]
    assert quote.total_qepik == 20 * 200_00


def test_wheat_one_square_metre_over_20_ha_pays_that_metre_at_the_second_tier() -> None:
    quote = subsidy(WHEAT, Crop.WHEAT, 20 * HA + 1, cooperative=False)
    assert [(p.area_square_metres, p.hundredths) for p in quote.tiers] == [(20 * HA, 100), (1, 80)]
    # 200 AZN × 0.8 per 10 000 m² is 1.6 qəpik per m²: rounded half up to 2.
    assert quote.total_qepik == 20 * 200_00 + 2


def test_wheat_on_30_ha_pays_20_at_one_and_10_at_point_eight() -> None:
    assert subsidy(WHEAT, Crop.WHEAT, 30 * HA, cooperative=False).total_qepik == 4000_00 + 1600_00


def test_rice_main_and_repeat_sowing_take_their_own_coefficients() -> None:
    repeat = SowingFacts(repeat_sowing=True, modern_irrigation=False)
    assert coefficient_for(TABLE, Crop.RICE, MAIN) == RICE_MAIN
    assert coefficient_for(TABLE, Crop.RICE, repeat) == RICE_REPEAT
    assert subsidy(RICE_MAIN, Crop.RICE, 10 * HA, cooperative=False).total_qepik == 3800_00


def test_maize_coefficient_depends_on_modern_irrigation() -> None:
    irrigated = SowingFacts(repeat_sowing=False, modern_irrigation=True)
    assert coefficient_for(TABLE, Crop.MAIZE, irrigated) == MAIZE_IRRIGATED
    assert coefficient_for(TABLE, Crop.MAIZE, MAIN) == MAIZE_PLAIN


def test_per_tonne_crop_gets_no_sowing_subsidy_and_says_so() -> None:
    quote = subsidy(coefficient_for(TABLE, Crop.COTTON, MAIN), Crop.COTTON, 10 * HA, cooperative=False)
    assert quote.total_qepik == 0 and quote.per_tonne
    assert "per tonne" in quote.note


def test_cooperative_on_exactly_50_ha_gets_no_bonus() -> None:
    quote = subsidy(RICE_MAIN, Crop.RICE, 50 * HA, cooperative=True)
    assert quote.cooperative_bonus_qepik == 0


def test_cooperative_over_50_ha_gets_ten_percent_more() -> None:
    quote = subsidy(RICE_MAIN, Crop.RICE, 50 * HA + 1, cooperative=True)
    base = sum(p.amount_qepik for p in quote.tiers)
    assert quote.cooperative_bonus_qepik == round(base / 10)
    assert quote.total_qepik == base + quote.cooperative_bonus_qepik


def test_individual_over_50_ha_gets_no_bonus() -> None:
    assert subsidy(RICE_MAIN, Crop.RICE, 60 * HA, cooperative=False).cooperative_bonus_qepik == 0


# --- Payout split ------------------------------------------------------------------------------


@pytest.mark.parametrize("total", [0, 1, 2, 3, 5, 7, 99, 100, 101, 4000_03, 123_456_789])
def test_cash_quarter_and_card_rest_add_up_to_the_total(total: int) -> None:
    split = payout_split(total)
    assert split.cash_qepik + split.card_qepik == total
    assert abs(split.cash_qepik * 4 - total) <= 2


def test_a_quarter_of_an_odd_amount_is_rounded_half_up() -> None:
    assert payout_split(2).cash_qepik == 1  # 0.5 → 1 and payout_split(2).card_qepik == 1
    assert payout_split(10).cash_qepik == 3  # 2.5 → 3


# --- Windows -----------------------------------------------------------------------------------


def test_last_working_day_of_december_2026_is_the_30th() -> None:
    # 31 December is a holiday (Solidarity Day).
    assert last_working_day_of_december(2026, HOLIDAYS) == date(2026, 12, 30)


def test_last_working_day_of_december_skips_the_weekend() -> None:
    # 2027: the 31st is a Friday and a holiday; the 30th, Thursday, works.
    assert last_working_day_of_december(2027, HOLIDAYS) == date(2027, 12, 30)
    # A year whose 30th and 31st fall on a weekend: 2028's 30th is a Saturday.
    assert last_working_day_of_december(2028, {date(2028, 12, 31)}) == date(2028, 12, 29)


@pytest.mark.parametrize(
    ("day", "campaign"),
    [
        (date(2026, 9, 1), Campaign.AUTUMN),
        (date(2026, 12, 30), Campaign.AUTUMN),
        (date(2027, 2, 1), Campaign.SPRING),
        (date(2027, 5, 31), Campaign.SPRING),
        (date(2027, 6, 1), Campaign.REPEAT),
        (date(2027, 8, 31), Campaign.REPEAT),
    ],
)
def test_first_and_last_days_are_inside_their_window(day: date, campaign: Campaign) -> None:
    window = declaration_window(day, HOLIDAYS, perennial=False)
    assert not isinstance(window, WindowRefusal)
    assert window.campaign == campaign and window.season_year == day.year


@pytest.mark.parametrize(
    ("day", "opens"),
    [
        (date(2026, 12, 31), date(2027, 2, 1)),
        (date(2027, 1, 31), date(2027, 2, 1)),
        (date(2026, 1, 15), date(2026, 2, 1)),
    ],
)
def test_outside_a_window_the_refusal_gives_the_next_window(day: date, opens: date) -> None:
    refusal = declaration_window(day, HOLIDAYS, perennial=False)
    assert isinstance(refusal, WindowRefusal)
    assert refusal.next_window.first_day == opens
    assert opens.isoformat() in refusal.message


def test_a_perennial_is_not_declared_in_the_repeat_window() -> None:
    refusal = declaration_window(date(2027, 7, 1), HOLIDAYS, perennial=True)
    assert isinstance(refusal, WindowRefusal)
    assert refusal.next_window.campaign == Campaign.AUTUMN
    assert refusal.next_window.last_day == date(2027, 12, 30)


# --- Conditions --------------------------------------------------------------------------------


def test_exactly_5_ha_needs_no_analysis_and_a_metre_more_does() -> None:
    assert missing_conditions(Crop.VEGETABLES, 5 * HA, analysis_reference="", insurance_reference="") == []
    missing = missing_conditions(Crop.VEGETABLES, 5 * HA + 1, analysis_reference="", insurance_reference="")
    assert [m.field for m in missing] == ["declaration.analysis_reference"]


def test_insured_crop_on_exactly_10_ha_needs_a_policy_and_under_does_not() -> None:
    under = missing_conditions(Crop.WHEAT, 10 * HA - 1, analysis_reference="A-1", insurance_reference="")
    at = missing_conditions(Crop.WHEAT, 10 * HA, analysis_reference="A-1", insurance_reference="")
    assert under == []
    assert [m.field for m in at] == ["declaration.insurance_reference"]


def test_crop_off_the_insurance_list_needs_no_policy() -> None:
    assert missing_conditions(Crop.ALFALFA, 30 * HA, analysis_reference="A-1", insurance_reference="") == []


# --- Monitoring --------------------------------------------------------------------------------


def test_exactly_5_percent_less_pays_on_the_monitored_area_without_a_cut() -> None:
    result = outcome(100 * HA, 95 * HA)
    assert (result.paid_area_square_metres, result.cut_percent, result.bans_next_season) == (
        95 * HA,
        0,
        False,
    )


def test_just_over_5_percent_cuts_by_30() -> None:
    assert outcome(100 * HA, 95 * HA - 1).cut_percent == 30


def test_exactly_20_percent_still_cuts_by_30() -> None:
    assert outcome(100 * HA, 80 * HA).cut_percent == 30


def test_just_over_20_percent_pays_nothing_without_a_ban() -> None:
    result = outcome(100 * HA, 80 * HA - 1)
    assert (result.cut_percent, result.bans_next_season) == (100, False)


def test_exactly_50_percent_pays_nothing_without_a_ban() -> None:
    assert outcome(100 * HA, 50 * HA).bans_next_season is False


def test_over_50_percent_bans_the_next_season() -> None:
    result = outcome(100 * HA, 50 * HA - 1)
    assert (result.cut_percent, result.bans_next_season) == (100, True)
    assert "next season" in result.note


def test_more_monitored_than_declared_pays_on_the_declared_area() -> None:
    assert outcome(100 * HA, 104 * HA).paid_area_square_metres == 100 * HA


def test_monitoring_cut_applies_to_the_subsidy() -> None:
    quote = subsidy(RICE_MAIN, Crop.RICE, 10 * HA, cooperative=False, monitoring_cut_percent=30)
    assert quote.total_qepik == 3800_00 - 1140_00


# --- Bank account ------------------------------------------------------------------------------


def test_azerbaijani_iban_with_right_check_digits_is_accepted() -> None:
    assert is_azerbaijani_iban("AZ21NABZ00000000137010001944")
    assert bank_code("AZ21NABZ00000000137010001944") == "NABZ"


@pytest.mark.parametrize(
    "value",
    [
        "AZ22NABZ00000000137010001944",  # check digits wrong
        "AZ21NABZ0000000013701000194",  # 27 characters
        "AZ21 NABZ 0000 0000 1370 1000 1944",  # spaced
        "az21nabz00000000137010001944",  # lower case
        "DE89370400440532013000",  # a valid IBAN, not Azerbaijani
    ],
)
def test_other_account_numbers_are_refused(value: str) -> None:
    assert not is_azerbaijani_iban(value)
