"""Farmers, parcels, declarations and their drafts, payout legs, the coefficient table and the holiday
calendar; seeded with the coefficient tables of 2026 and 2027 (version 1) and the public
holidays of 2026 and 2027.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.runtime.holidays import seed_holidays

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)

# The coefficients of Decree 759 (2019) as the Ministry of Agriculture publishes them: rice
# 1.9 on the main sowing and 0.6 on a repeat one; maize 0.8 with modern irrigation and 0.5
# without; from the older published tables, wheat 1.0 for the first 20 ha and 0.8 above,
# barley and other cereals 0.8, sunflower 1.0, potatoes and vegetables 1.2, alfalfa 0.25.
# Cotton, tobacco and sugar beet are paid per tonne of product. Tiers: "from_ha:hundredths".
COEFFICIENTS_V1 = [
    ("WHEAT", "ANY", "0:100,20:80", False),
    ("BARLEY", "ANY", "0:80", False),
    ("OTHER_CEREALS", "ANY", "0:80", False),
    ("RICE", "MAIN_SOWING", "0:190", False),
    ("RICE", "REPEAT_SOWING", "0:60", False),
    ("MAIZE", "MODERN_IRRIGATION", "0:80", False),
    ("MAIZE", "NO_MODERN_IRRIGATION", "0:50", False),
    ("SUNFLOWER", "ANY", "0:100", False),
    ("POTATOES", "ANY", "0:120", False),
    ("VEGETABLES", "ANY", "0:120", False),
    ("ALFALFA", "ANY", "0:25", False),
    ("COTTON", "ANY", "", True),
    ("TOBACCO", "ANY", "", True),
    ("SUGAR_BEET", "ANY", "", True),
]
SEASON_YEARS = (2026, 2027)
# From the suite's one source, services.runtime.holidays_az.
HOLIDAY_YEARS = (2026, 2027)


def upgrade() -> None:
    # The runtime's tables (services.runtime.tables) as they were when this revision was written.
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
        sa.Column("set_aside_at", Timestamp, nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
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
    op.create_index("ix_inbox_received_at", "inbox", ["received_at"])
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(300), server_default="", nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("method", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("scope", "request_id", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(op.f("ix_idempotency_keys_created_at"), "idempotency_keys", ["created_at"])
    op.create_table(
        "holidays",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_holidays")),
    )
    op.create_index(op.f("ix_holidays_year"), "holidays", ["year"])
    coefficients = op.create_table(
        "coefficients",
        sa.Column("season_year", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("crop", sa.String(20), nullable=False),
        sa.Column("condition", sa.String(24), nullable=False),
        sa.Column("tiers", sa.String(100), nullable=False),
        sa.Column("per_tonne", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("season_year", "version", "crop", "condition", name=op.f("pk_coefficients")),
    )
    op.create_table(
        "farmers",
        sa.Column("fin", sa.String(7), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("cooperative_voen", sa.String(10), nullable=True),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("iban", sa.String(28), nullable=False),
        sa.Column("input_card_reference", sa.String(100), nullable=False),
        sa.Column("registered_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("fin", name=op.f("pk_farmers")),
    )
    op.create_table(
        "season_bans",
        sa.Column("farmer_fin", sa.String(7), nullable=False),
        sa.Column("season_year", sa.Integer(), nullable=False),
        sa.Column("declaration_number", sa.String(20), nullable=False),
        sa.ForeignKeyConstraint(
            ["farmer_fin"], ["farmers.fin"], name=op.f("fk_season_bans_farmer_fin_farmers")
        ),
        sa.PrimaryKeyConstraint("farmer_fin", "season_year", name=op.f("pk_season_bans")),
    )
    op.create_table(
        "parcels",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("farmer_fin", sa.String(7), nullable=False),
        sa.Column("registry_number", sa.String(40), nullable=False),
        sa.Column("land_document", sa.String(60), nullable=False),
        sa.Column("district", sa.String(30), nullable=False),
        sa.Column("contour_geojson", sa.Text(), nullable=False),
        sa.Column("area_m2", sa.BigInteger(), nullable=False),
        sa.Column("eligible_m2", sa.BigInteger(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(["farmer_fin"], ["farmers.fin"], name=op.f("fk_parcels_farmer_fin_farmers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parcels")),
        sa.UniqueConstraint("registry_number", name=op.f("uq_parcels_registry_number")),
    )
    op.create_index(op.f("ix_parcels_farmer_fin"), "parcels", ["farmer_fin"])
    op.create_index(op.f("ix_parcels_district"), "parcels", ["district"])
    op.create_table(
        "declaration_windows",
        sa.Column("season_year", sa.Integer(), nullable=False),
        sa.Column("campaign", sa.String(10), nullable=False),
        sa.Column("opened_reported", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("season_year", "campaign", name=op.f("pk_declaration_windows")),
    )
    op.create_table(
        "declarations",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("number", sa.String(20), nullable=False),
        sa.Column("farmer_fin", sa.String(7), nullable=False),
        sa.Column("parcel_id", sa.String(36), nullable=False),
        sa.Column("district", sa.String(30), nullable=False),
        sa.Column("crop", sa.String(20), nullable=False),
        sa.Column("season_year", sa.Integer(), nullable=False),
        sa.Column("campaign", sa.String(10), nullable=False),
        sa.Column("contour_geojson", sa.Text(), nullable=False),
        sa.Column("area_m2", sa.BigInteger(), nullable=False),
        sa.Column("min_lon", sa.Float(), nullable=False),
        sa.Column("min_lat", sa.Float(), nullable=False),
        sa.Column("max_lon", sa.Float(), nullable=False),
        sa.Column("max_lat", sa.Float(), nullable=False),
        sa.Column("lon_cell", sa.Integer(), nullable=False),
        sa.Column("modern_irrigation", sa.Boolean(), nullable=False),
        sa.Column("analysis_reference", sa.String(60), nullable=False),
        sa.Column("insurance_reference", sa.String(60), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("subsidy", sa.LargeBinary(), nullable=False),
        sa.Column("subsidy_qepik", sa.BigInteger(), nullable=False),
        sa.Column("monitored_m2", sa.BigInteger(), nullable=True),
        sa.Column("rejection_reason", sa.String(500), nullable=True),
        sa.Column("declared_at", Timestamp, nullable=False),
        sa.Column("decided_at", Timestamp, nullable=True),
        sa.Column("decided_by", sa.String(100), nullable=True),
        sa.ForeignKeyConstraint(
            ["farmer_fin"], ["farmers.fin"], name=op.f("fk_declarations_farmer_fin_farmers")
        ),
        sa.ForeignKeyConstraint(
            ["parcel_id"], ["parcels.id"], name=op.f("fk_declarations_parcel_id_parcels")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_declarations")),
        sa.UniqueConstraint("number", name=op.f("uq_declarations_number")),
    )
    op.create_index("ix_declarations_parcel_window", "declarations", ["parcel_id", "season_year", "campaign"])
    op.create_index(
        "ix_declarations_window_cell", "declarations", ["season_year", "campaign", "lon_cell", "min_lat"]
    )
    op.create_index("ix_declarations_farmer", "declarations", ["farmer_fin", "declared_at", "id"])
    op.create_index("ix_declarations_queue", "declarations", ["district", "declared_at", "id"])
    op.create_table(
        "declaration_drafts",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("farmer_fin", sa.String(7), nullable=False),
        sa.Column("parcel_id", sa.String(36), nullable=False),
        sa.Column("crop", sa.String(20), nullable=False),
        sa.Column("season_year", sa.Integer(), nullable=False),
        sa.Column("campaign", sa.String(10), nullable=False),
        sa.Column("contour_geojson", sa.Text(), nullable=False),
        sa.Column("modern_irrigation", sa.Boolean(), nullable=False),
        sa.Column("analysis_reference", sa.String(60), nullable=False),
        sa.Column("insurance_reference", sa.String(60), nullable=False),
        sa.Column("from_declaration_id", sa.String(36), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["farmer_fin"], ["farmers.fin"], name=op.f("fk_declaration_drafts_farmer_fin_farmers")
        ),
        sa.ForeignKeyConstraint(
            ["parcel_id"], ["parcels.id"], name=op.f("fk_declaration_drafts_parcel_id_parcels")
        ),
        sa.ForeignKeyConstraint(
            ["from_declaration_id"],
            ["declarations.id"],
            name=op.f("fk_declaration_drafts_from_declaration_id_declarations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_declaration_drafts")),
        sa.UniqueConstraint("from_declaration_id", name=op.f("uq_declaration_drafts_from_declaration_id")),
    )
    op.create_index(
        "ix_declaration_drafts_farmer",
        "declaration_drafts",
        ["farmer_fin", "season_year", "campaign", "created_at", "id"],
    )
    op.create_table(
        "payout_legs",
        sa.Column("declaration_id", sa.String(36), nullable=False),
        sa.Column("leg", sa.String(4), nullable=False),
        sa.Column("amount_qepik", sa.BigInteger(), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["declaration_id"], ["declarations.id"], name=op.f("fk_payout_legs_declaration_id_declarations")
        ),
        sa.PrimaryKeyConstraint("declaration_id", "leg", name=op.f("pk_payout_legs")),
        sa.UniqueConstraint("request_id", name=op.f("uq_payout_legs_request_id")),
    )
    op.bulk_insert(
        coefficients,
        [
            {
                "season_year": year,
                "version": 1,
                "crop": crop,
                "condition": condition,
                "tiers": tiers,
                "per_tonne": per_tonne,
            }
            for year in SEASON_YEARS
            for crop, condition, tiers, per_tonne in COEFFICIENTS_V1
        ],
    )
    seed_holidays(HOLIDAY_YEARS)


def downgrade() -> None:
    for table in (
        "payout_legs",
        "declaration_drafts",
        "declarations",
        "declaration_windows",
        "parcels",
        "season_bans",
        "farmers",
        "coefficients",
        "holidays",
        "idempotency_keys",
        "inbox",
        "outbox",
    ):
        op.drop_table(table)
