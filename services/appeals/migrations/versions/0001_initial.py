"""Appeals with their history and attachments, the yearly number counters, the versioned catalogue of agencies
and categories, and the holiday calendar; seeded with catalogue version 1 and the public
holidays of 2026 and 2027.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from services.runtime.holidays import seed_holidays

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)

# The public holidays of 2026 and 2027 come from the suite's one source,
# services.runtime.holidays_az.
HOLIDAY_YEARS = (2026, 2027)

# Catalogue version 1: agencies (codes as their officers' tokens carry them) and a sample of
# categories, each with the attributes its appeals answer.
AGENCIES_V1 = [
    (
        "DMX",
        "Dövlət Miqrasiya Xidməti",
        "State Migration Service",
        "Государственная миграционная служба",
        ["dmx-supervisor-1"],
    ),
    (
        "DIN",
        "Daxili İşlər Nazirliyi",
        "Ministry of Internal Affairs",
        "Министерство внутренних дел",
        ["din-supervisor-1"],
    ),
    ("DGK", "Dövlət Gömrük Komitəsi", "State Customs Committee", "Государственный таможенный комитет", []),
    (
        "ASAN",
        "Vətəndaşlara Xidmət və Sosial İnnovasiyalar üzrə Dövlət Agentliyi",
        "State Agency for Public Service and Social Innovations",
        "Государственное агентство по обслуживанию граждан и социальным инновациям",
        ["asan-supervisor-1"],
    ),
    (
        "AAYDA",
        "Azərbaycan Avtomobil Yolları Dövlət Agentliyi",
        "Azerbaijan State Agency of Automobile Roads",
        "Государственное агентство автомобильных дорог Азербайджана",
        ["aayda-supervisor-1"],
    ),
]


def _names(az: str, en: str, ru: str) -> dict[str, str]:
    return {"az": az, "en": en, "ru": ru}


def _attribute(
    code: str,
    names: tuple[str, str, str],
    kind: str,
    required: bool,
    choices: Sequence[tuple[str, tuple[str, str, str]]] = (),
) -> dict[str, object]:
    return {
        "code": code,
        "name": _names(*names),
        "type": kind,
        "required": required,
        "choices": [{"key": key, "name": _names(*choice)} for key, choice in choices],
    }


CATEGORIES_V1 = [
    (
        "migration.residence_permit",
        "DMX",
        _names("Yaşamaq icazəsi", "Residence permit", "Вид на жительство"),
        [
            _attribute(
                "permit_number", ("İcazənin nömrəsi", "Permit number", "Номер разрешения"), "STRING", False
            ),
            _attribute("applied_at", ("Müraciət tarixi", "Date applied", "Дата подачи"), "DATETIME", False),
        ],
    ),
    (
        "traffic.fine_dispute",
        "DIN",
        _names("Cərimə ilə razılaşmıram", "Disputing a traffic fine", "Оспаривание штрафа"),
        [
            _attribute(
                "protocol_number",
                ("Protokolun nömrəsi", "Protocol number", "Номер протокола"),
                "STRING",
                True,
            ),
            _attribute("fined_at", ("Cərimə tarixi", "When fined", "Дата штрафа"), "DATETIME", False),
        ],
    ),
    (
        "roads.damage",
        "AAYDA",
        _names("Yolun zədələnməsi", "Road damage", "Повреждение дороги"),
        [
            _attribute(
                "damage_kind",
                ("Zədənin növü", "Kind of damage", "Вид повреждения"),
                "SINGLE_VALUE_LIST",
                True,
                [
                    ("pothole", ("Çuxur", "Pothole", "Выбоина")),
                    ("missing_sign", ("Nişan yoxdur", "Missing sign", "Нет знака")),
                    ("broken_light", ("Svetofor işləmir", "Broken traffic light", "Не работает светофор")),
                ],
            ),
            _attribute(
                "lanes_affected", ("Zolaqların sayı", "Lanes affected", "Число полос"), "NUMBER", False
            ),
        ],
    ),
    (
        "payment.problem",
        "ASAN",
        _names("Ödənişlə bağlı problem", "A problem with a payment", "Проблема с платежом"),
        [
            _attribute(
                "problem",
                ("Problem", "Problem", "Проблема"),
                "SINGLE_VALUE_LIST",
                True,
                [
                    ("charged_twice", ("İki dəfə tutulub", "Charged twice", "Списано дважды")),
                    ("not_credited", ("Ödəniş görünmür", "Not credited", "Платёж не зачислен")),
                    ("refund_delay", ("Qaytarılma gecikir", "Refund delayed", "Задержка возврата")),
                ],
            ),
            _attribute("details", ("Ətraflı", "Details", "Подробности"), "TEXT", False),
        ],
    ),
    (
        "customs.clearance",
        "DGK",
        _names("Gömrük rəsmiləşdirməsi", "Customs clearance", "Таможенное оформление"),
        [
            _attribute(
                "declaration_number",
                ("Bəyannamənin nömrəsi", "Declaration number", "Номер декларации"),
                "STRING",
                False,
            ),
            _attribute(
                "goods",
                ("Mallar", "Goods", "Товары"),
                "MULTI_VALUE_LIST",
                False,
                [
                    ("vehicle", ("Avtomobil", "Vehicle", "Автомобиль")),
                    ("parcel", ("Bağlama", "Parcel", "Посылка")),
                    ("cash", ("Nağd pul", "Cash", "Наличные")),
                ],
            ),
        ],
    ),
]


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
    agencies = op.create_table(
        "agencies",
        sa.Column("code", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name_az", sa.String(200), nullable=False),
        sa.Column("name_en", sa.String(200), nullable=False),
        sa.Column("name_ru", sa.String(200), nullable=False),
        sa.Column("supervisors", sa.Text(), nullable=False),
        sa.Column("valid_from", Timestamp, nullable=False),
        sa.Column("valid_to", Timestamp, nullable=True),
        sa.Column("changed_by", sa.String(300), nullable=False),
        sa.PrimaryKeyConstraint("code", "version", name=op.f("pk_agencies")),
    )
    categories = op.create_table(
        "categories",
        sa.Column("code", sa.String(60), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("agency_code", sa.String(20), nullable=False),
        sa.Column("name_az", sa.String(200), nullable=False),
        sa.Column("name_en", sa.String(200), nullable=False),
        sa.Column("name_ru", sa.String(200), nullable=False),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("valid_from", Timestamp, nullable=False),
        sa.Column("valid_to", Timestamp, nullable=True),
        sa.Column("changed_by", sa.String(300), nullable=False),
        sa.PrimaryKeyConstraint("code", "version", name=op.f("pk_categories")),
    )
    op.create_table(
        "appeal_numbers",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_appeal_numbers")),
    )
    op.create_table(
        "appeals",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("number", sa.String(20), nullable=False),
        sa.Column("citizen_fin", sa.String(7), nullable=False),
        sa.Column("category_code", sa.String(60), nullable=False),
        sa.Column("category_version", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("normalised_text", sa.Text(), nullable=False),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("latitude_e6", sa.Integer(), nullable=True),
        sa.Column("longitude_e6", sa.Integer(), nullable=True),
        sa.Column("address", sa.String(300), nullable=True),
        sa.Column("linked_service", sa.String(20), nullable=True),
        sa.Column("linked_object_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("agency_code", sa.String(20), nullable=False),
        sa.Column("executor", sa.String(255), nullable=True),
        sa.Column("registered_at", Timestamp, nullable=False),
        sa.Column("received_at", Timestamp, nullable=False),
        sa.Column("received_date", sa.Date(), nullable=False),
        sa.Column("study", sa.Boolean(), nullable=False),
        sa.Column("extension_working_days", sa.Integer(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("due_at", Timestamp, nullable=False),
        sa.Column("due_soon_date", sa.Date(), nullable=True),
        sa.Column("overdue", sa.Boolean(), nullable=False),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=True),
        sa.Column("answer_text", sa.Text(), nullable=True),
        sa.Column("answered_at", Timestamp, nullable=True),
        sa.Column("answered_on_time", sa.Boolean(), nullable=True),
        sa.Column("answer_working_days", sa.Integer(), nullable=True),
        sa.Column("rating", sa.String(20), nullable=True),
        sa.Column("rating_comment", sa.String(1000), nullable=True),
        sa.Column("reopened", sa.Boolean(), nullable=False),
        sa.Column("closed_at", Timestamp, nullable=True),
        sa.Column("similar_numbers", sa.Text(), nullable=False),
        sa.Column("copy_of", sa.String(20), nullable=True),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appeals")),
        sa.UniqueConstraint("number", name=op.f("uq_appeals_number")),
    )
    op.create_index("ix_appeals_queue", "appeals", ["agency_code", "due_at", "number"])
    op.create_index("ix_appeals_citizen", "appeals", ["citizen_fin", "category_code", "registered_at"])
    op.create_index("ix_appeals_due", "appeals", ["status", "overdue", "due_at"])
    op.create_index("ix_appeals_registered_at", "appeals", ["registered_at"])
    op.create_index("ix_appeals_published", "appeals", ["published", "registered_at"])
    op.create_table(
        "appeal_history",
        sa.Column("appeal_id", sa.String(36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("action", sa.String(30), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("agency_code", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(60), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["appeal_id"], ["appeals.id"], name=op.f("fk_appeal_history_appeal_id_appeals")
        ),
        sa.PrimaryKeyConstraint("appeal_id", "position", name=op.f("pk_appeal_history")),
    )
    op.create_table(
        "appeal_attachments",
        sa.Column("appeal_id", sa.String(36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(200), nullable=False),
        sa.Column("content_type", sa.String(40), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["appeal_id"], ["appeals.id"], name=op.f("fk_appeal_attachments_appeal_id_appeals")
        ),
        sa.PrimaryKeyConstraint("appeal_id", "position", name=op.f("pk_appeal_attachments")),
    )

    valid_from = datetime(2026, 1, 1, tzinfo=UTC)
    op.bulk_insert(
        agencies,
        [
            {
                "code": code,
                "version": 1,
                "name_az": az,
                "name_en": en,
                "name_ru": ru,
                "supervisors": json.dumps(supervisors),
                "valid_from": valid_from,
                "valid_to": None,
                "changed_by": "migration 0001",
            }
            for code, az, en, ru, supervisors in AGENCIES_V1
        ],
    )
    op.bulk_insert(
        categories,
        [
            {
                "code": code,
                "version": 1,
                "agency_code": agency,
                "name_az": names["az"],
                "name_en": names["en"],
                "name_ru": names["ru"],
                "attributes": json.dumps(attributes, ensure_ascii=False),
                "active": True,
                "valid_from": valid_from,
                "valid_to": None,
                "changed_by": "migration 0001",
            }
            for code, agency, names, attributes in CATEGORIES_V1
        ],
    )
    seed_holidays(HOLIDAY_YEARS)


def downgrade() -> None:
    for table in (
        "appeal_attachments",
        "appeal_history",
        "appeals",
        "appeal_numbers",
        "categories",
        "agencies",
        "holidays",
        "idempotency_keys",
        "inbox",
        "outbox",
    ):
        op.drop_table(table)
