"""Who may ask for what, which register serves each scope, and how a consent reads in plain
words. Pure data and rules: no I/O, no protobuf.

Registered data consumers are the banks licensed by the Central Bank of Azerbaijan that
joined ASAN Finans, each with the purposes its registration allows. Their codes are the
`asan_institution` claims of their tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from services.runtime.baku_time import BAKU

LOCALES = ("az", "en", "ru")


@dataclass(frozen=True)
class Institution:
    code: str
    name: str
    purposes: frozenset[str]


_LENDING = frozenset({"CONSUMER_LOAN", "MORTGAGE", "CREDIT_LINE", "CARD_LIMIT_REVIEW"})

INSTITUTIONS = {
    institution.code: institution
    for institution in (
        Institution("KAPITALBANK", "Kapital Bank", _LENDING | {"AGRICULTURAL_LOAN"}),
        Institution("PASHABANK", "PAŞA Bank", _LENDING),
        Institution("ABB", "Azərbaycan Beynəlxalq Bankı", _LENDING),
        # A credit institution registered for farm loans only.
        Institution("AQRARKREDIT", "Aqrar Kredit", frozenset({"AGRICULTURAL_LOAN"})),
        # The sandbox bank of the documentation: every purpose, for integration tests.
        Institution("SANDBOXBANK", "Sandbox Bank", _LENDING | {"AGRICULTURAL_LOAN"}),
    )
}


@dataclass(frozen=True)
class ScopeSource:
    """The register that serves a scope, and the only fields it may give for it."""

    provider: str
    fields: tuple[str, ...]


SCOPES = {
    "INCOME": ScopeSource("tax", ("month", "employer_voen", "gross_income_qepik", "tax_withheld_qepik")),
    "EMPLOYMENT": ScopeSource(
        "employment", ("employer_voen", "employer_name", "position", "start_date", "end_date")
    ),
    "SOCIAL_INSURANCE": ScopeSource(
        "social_insurance", ("month", "contribution_qepik", "insured_income_qepik")
    ),
    "PROPERTY": ScopeSource(
        "property", ("register_number", "kind", "address", "area_m2", "share", "registered_on")
    ),
    "STATE_PAYMENTS": ScopeSource(
        "payment", ("reference", "service_code", "amount_qepik", "status", "paid_on")
    ),
    "FARMING": ScopeSource("agro", ("parcel", "area_hectares_x100", "crop", "season", "subsidy_qepik")),
}

# Providers outside the suite reached through sandbox adapters (services.finance.sandbox).
SANDBOX_PROVIDERS = ("tax", "employment", "social_insurance", "property")


def providers_of(scopes: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The providers to ask for `scopes`, each with its scopes, in a stable order."""
    by_provider: dict[str, list[str]] = {}
    for scope in scopes:
        by_provider.setdefault(SCOPES[scope].provider, []).append(scope)
    return {provider: tuple(asked) for provider, asked in sorted(by_provider.items())}


_PURPOSE_WORDS = {
    "CONSUMER_LOAN": ("istehlak krediti", "a consumer loan", "потребительский кредит"),
    "MORTGAGE": ("ipoteka krediti", "a mortgage", "ипотечный кредит"),
    "CREDIT_LINE": ("kredit xətti", "a credit line", "кредитная линия"),
    "CARD_LIMIT_REVIEW": (
        "kart limitinin yenidən baxılması",
        "a card limit review",
        "пересмотр лимита карты",
    ),
    "AGRICULTURAL_LOAN": ("kənd təsərrüfatı krediti", "an agricultural loan", "сельскохозяйственный кредит"),
}

_SCOPE_WORDS = {
    "INCOME": ("gəlirləriniz", "your income", "ваши доходы"),
    "EMPLOYMENT": ("əmək müqavilələriniz", "your employment contracts", "ваши трудовые договоры"),
    "SOCIAL_INSURANCE": ("sosial sığorta haqlarınız", "your social insurance", "ваше социальное страхование"),
    "PROPERTY": ("daşınmaz əmlakınız", "your property", "ваша недвижимость"),
    "STATE_PAYMENTS": ("dövlət ödənişləriniz", "your state payments", "ваши государственные платежи"),
    "FARMING": ("torpaq və subsidiyalarınız", "your farmland and subsidies", "ваши земли и субсидии"),
}


def scope_words(scopes: tuple[str, ...]) -> tuple[str, str, str]:
    """The data of `scopes` in words, in az, en and ru: "your income, your property"."""
    az, en, ru = ([_SCOPE_WORDS[scope][index] for scope in scopes] for index in range(3))
    return ", ".join(az), ", ".join(en), ", ".join(ru)


def institution_name(code: str) -> str:
    institution = INSTITUTIONS.get(code)
    return institution.name if institution else code


def consent_summary(
    *,
    institution_code: str,
    purpose: str,
    scopes: tuple[str, ...],
    period_start: date,
    period_end: date,
    one_time: bool,
    expire_on: date,
) -> dict[str, str]:
    """Who asks, why, which data, for how long: what a citizen reads before answering."""
    bank = institution_name(institution_code)
    az, en, ru = (
        [words[index] for words in (_PURPOSE_WORDS[purpose], *(_SCOPE_WORDS[s] for s in scopes))]
        for index in range(3)
    )
    start, end, until = period_start.isoformat(), period_end.isoformat(), expire_on.isoformat()
    return {
        "az": (
            f"{bank} {az[0]} üçün {start} – {end} dövrünə aid {', '.join(az[1:])} barədə məlumat istəyir; "
            + ("bir dəfə" if one_time else "dövri olaraq")
            + f", {until} tarixinədək."
        ),
        "en": (
            f"{bank} asks for {', '.join(en[1:])} from {start} to {end}, for {en[0]}; "
            + ("once" if one_time else "repeatedly")
            + f", until {until}."
        ),
        "ru": (
            f"{bank} запрашивает {', '.join(ru[1:])} за период {start} – {end} для цели «{ru[0]}»; "
            + ("однократно" if one_time else "периодически")
            + f", до {until}."
        ),
    }


_ACTION_WORDS = {
    "CONSENT_REQUESTED": ("razılıq istədi", "asked for your consent", "запросил ваше согласие"),
    "CONSENT_APPROVED": ("razılığınızı aldı", "received your consent", "получил ваше согласие"),
    "CONSENT_REJECTED": ("razılıqdan imtina etdiniz", "was refused your consent", "получил отказ в согласии"),
    "CONSENT_PAUSED": ("razılığı dayandırdınız", "had your consent paused", "ваше согласие приостановлено"),
    "CONSENT_RESUMED": ("razılığı bərpa etdiniz", "had your consent resumed", "ваше согласие возобновлено"),
    "CONSENT_REVOKED": ("razılığı geri götürdünüz", "had your consent revoked", "ваше согласие отозвано"),
    "CONSENT_EXPIRED": ("razılığın müddəti bitdi", "saw your consent expire", "срок вашего согласия истёк"),
    "DATA_FETCHED": ("məlumatlarınızı aldı", "read your data", "получил ваши данные"),
}


def entry_description(
    action: str, institution_code: str, purpose: str, scopes: tuple[str, ...], at: datetime
) -> dict[str, str]:
    """One access log entry in plain words, in each locale."""
    bank = institution_name(institution_code)
    words = _ACTION_WORDS[action]
    texts = {}
    for index, locale in enumerate(LOCALES):
        data = ", ".join(_SCOPE_WORDS[scope][index] for scope in scopes)
        why = _PURPOSE_WORDS[purpose][index]
        texts[locale] = f"{at.astimezone(BAKU):%Y-%m-%d %H:%M}: {bank} — {words[index]} ({data}; {why})."
    return texts
