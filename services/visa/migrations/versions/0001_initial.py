"""Applications and applicants, the versioned country table, the holiday calendar and the
watchlist; seeded with country version 1 and the public holidays of 2026 and 2027.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op

from services.runtime.holidays import seed_holidays

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)

# Country table version 1 (a sample of the real list). Visa-free stays in days.
COUNTRIES_V1 = [
    ("TUR", "Türkiye", "VISA_FREE", 90),
    ("RUS", "Russian Federation", "VISA_FREE", 90),
    ("GEO", "Georgia", "VISA_FREE", 90),
    ("UKR", "Ukraine", "VISA_FREE", 90),
    ("BLR", "Belarus", "VISA_FREE", 90),
    ("KAZ", "Kazakhstan", "VISA_FREE", 90),
    ("UZB", "Uzbekistan", "VISA_FREE", 60),
    ("MDA", "Moldova", "VISA_FREE", 90),
    ("KGZ", "Kyrgyzstan", "VISA_FREE", 90),
    ("TJK", "Tajikistan", "VISA_FREE", 90),
    ("ARE", "United Arab Emirates", "VISA_FREE", 90),
    ("QAT", "Qatar", "VISA_FREE", 90),
    ("USA", "United States of America", "EVISA", None),
    ("GBR", "United Kingdom", "EVISA", None),
    ("DEU", "Germany", "EVISA", None),
    ("FRA", "France", "EVISA", None),
    ("ITA", "Italy", "EVISA", None),
    ("ESP", "Spain", "EVISA", None),
    ("NLD", "Netherlands", "EVISA", None),
    ("POL", "Poland", "EVISA", None),
    ("CHN", "China", "EVISA", None),
    ("IND", "India", "EVISA", None),
    ("JPN", "Japan", "EVISA", None),
    ("KOR", "Republic of Korea", "EVISA", None),
    ("CAN", "Canada", "EVISA", None),
    ("AUS", "Australia", "EVISA", None),
    ("BRA", "Brazil", "EVISA", None),
    ("SAU", "Saudi Arabia", "EVISA", None),
    ("EGY", "Egypt", "EVISA", None),
    ("PAK", "Pakistan", "EVISA", None),
    ("ISR", "Israel", "EVISA", None),
    ("IRN", "Iran", "EVISA", None),
    ("AFG", "Afghanistan", "EMBASSY", None),
    ("SOM", "Somalia", "EMBASSY", None),
    ("YEM", "Yemen", "EMBASSY", None),
    ("SYR", "Syria", "EMBASSY", None),
    ("ARM", "Armenia", "EMBASSY", None),
]

# The public holidays of 2026 and 2027 (Labour Code of Azerbaijan, art. 105, and the expected
# lunar dates) come from the suite's one source, services.runtime.holidays_az.
HOLIDAY_YEARS = (2026, 2027)


def upgrade() -> None:
    # The runtime's tables as services.runtime.tables defined them when this revision was
    # written; later revisions change them (scope, set-aside columns, the inbox index).
    op.create_table(
        "outbox",
        sa.Column(
            "position",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("published_at", Timestamp, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
    )
    op.create_index("ix_outbox_unpublished", "outbox", ["published_at", "position"])
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("received_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox")),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("method", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(op.f("ix_idempotency_keys_created_at"), "idempotency_keys", ["created_at"])
    countries = op.create_table(
        "country_policies",
        sa.Column("country_code", sa.String(3), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("rule", sa.String(10), nullable=False),
        sa.Column("visa_free_stay_days", sa.Integer(), nullable=True),
        sa.Column("valid_from", Timestamp, nullable=False),
        sa.Column("valid_to", Timestamp, nullable=True),
        sa.Column("changed_by", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("country_code", "version", name=op.f("pk_country_policies")),
    )
    op.create_table(
        "holidays",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_holidays")),
    )
    op.create_index(op.f("ix_holidays_year"), "holidays", ["year"])
    watchlist = op.create_table(
        "watchlist",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("passport_number", sa.String(20), nullable=True),
        sa.Column("normalized_name", sa.String(210), nullable=True),
        sa.Column("date_of_birth", sa.Date(), nullable=True),
        sa.Column("note", sa.String(300), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watchlist")),
    )
    op.create_index(op.f("ix_watchlist_passport_number"), "watchlist", ["passport_number"])
    op.create_table(
        "applications",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("number", sa.String(20), nullable=False),
        sa.Column("arrival_date", sa.Date(), nullable=False),
        sa.Column("purpose", sa.String(20), nullable=False),
        sa.Column("speed", sa.String(10), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("payment_id", sa.String(36), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_currency", sa.String(3), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("submitted_at", Timestamp, nullable=True),
        sa.Column("due_at", Timestamp, nullable=True),
        sa.Column("decided_at", Timestamp, nullable=True),
        sa.Column("queue_at", Timestamp, nullable=False),
        sa.Column("overdue", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applications")),
        sa.UniqueConstraint("number", name=op.f("uq_applications_number")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_applications_payment_id")),
    )
    op.create_index("ix_applications_queue", "applications", ["status", "queue_at", "id"])
    op.create_index("ix_applications_due", "applications", ["status", "overdue", "due_at"])
    op.create_table(
        "applicants",
        sa.Column("application_id", sa.String(36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("surname", sa.String(100), nullable=False),
        sa.Column("given_names", sa.String(100), nullable=False),
        sa.Column("normalized_name", sa.String(210), nullable=False),
        sa.Column("date_of_birth", sa.Date(), nullable=False),
        sa.Column("sex", sa.String(10), nullable=False),
        sa.Column("nationality", sa.String(3), nullable=False),
        sa.Column("passport_number", sa.String(20), nullable=False),
        sa.Column("passport_expiry", sa.Date(), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("decision", sa.String(10), nullable=True),
        sa.Column("refusal_reason", sa.String(40), nullable=True),
        sa.Column("decided_at", Timestamp, nullable=True),
        sa.Column("decided_by", sa.String(100), nullable=True),
        sa.Column("visa_number", sa.String(20), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("verification_code", sa.String(600), nullable=True),
        sa.Column("entry_at", Timestamp, nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name=op.f("fk_applicants_application_id_applications")
        ),
        sa.PrimaryKeyConstraint("application_id", "position", name=op.f("pk_applicants")),
        sa.UniqueConstraint("visa_number", name=op.f("uq_applicants_visa_number")),
    )
    op.create_index(op.f("ix_applicants_passport_number"), "applicants", ["passport_number"])

    valid_from = datetime(2026, 1, 1, tzinfo=UTC)
    op.bulk_insert(
        countries,
        [
            {
                "country_code": code,
                "version": 1,
                "name": name,
                "rule": rule,
                "visa_free_stay_days": stay,
                "valid_from": valid_from,
                "valid_to": None,
                "changed_by": "migration 0001",
            }
            for code, name, rule, stay in COUNTRIES_V1
        ],
    )
    seed_holidays(HOLIDAY_YEARS)
    # Fictitious entries, so that the automatic check has something to find in every environment.
    op.bulk_insert(
        watchlist,
        [
            {
                "passport_number": "WL0000001",
                "normalized_name": None,
                "date_of_birth": None,
                "note": "sample",
            },
            {
                "passport_number": None,
                "normalized_name": "MUSTERMANN ERIKA",
                "date_of_birth": date(1964, 8, 12),
                "note": "sample",
            },
        ],
    )


def downgrade() -> None:
    for table in (
        "applicants",
        "applications",
        "watchlist",
        "holidays",
        "country_policies",
        "idempotency_keys",
        "inbox",
        "outbox",
    ):
        op.drop_table(table)
