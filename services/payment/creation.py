"""CreatePayment's unit of work: price the new payment against the service's current catalogue
entry, check who may create it, and add it as CREATED, in the caller's transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import cast

from sqlalchemy import Table, insert, inspect
from sqlalchemy.orm import Session

from services.payment import access, queries
from services.payment.catalogue import CatalogueEntry, FeeKind, NewPayment, validate_new_payment
from services.payment.confirmation_key import ConfirmationKey, secret_hash
from services.payment.states import PaymentStatus, expire_time_for
from services.payment.tables import CatalogueEntryRow, PaymentRow
from services.runtime.auth import Principal
from services.runtime.validation import Violations

# A new payment's INSERT, built once, and each attribute's column (`caller_metadata` is the
# column `metadata`).
_INSERT_PAYMENT = insert(cast(Table, PaymentRow.__table__))
_COLUMN_KEYS = {attribute.key: attribute.columns[0].key for attribute in inspect(PaymentRow).column_attrs}


def priced_entry(session: Session, new: NewPayment, violations: Violations) -> CatalogueEntryRow:
    """The catalogue entry that prices `new`; raises INVALID_ARGUMENT with every violation of
    `new`, and those already in `violations`."""
    row = queries.current_entry(session, new.service_code) if new.service_code else None
    validate_new_payment(new, catalogue_entry_of(row) if row else None, violations)
    violations.raise_if_any()
    assert row is not None
    return row


def create_payment(
    session: Session, new: NewPayment, principal: Principal, now: datetime, confirmation_key: ConfirmationKey
) -> PaymentRow:
    """The new payment. A foreign payer's is payable by a confirmation secret, since only a
    payer without ASAN Login needs one to pay without a token: the payment keeps its hash, the
    secret itself is derived again whenever it is shown (`ConfirmationKey.secret_for`)."""
    row = priced_entry(session, new, Violations())
    foreign = new.payer_passport is not None
    access.ensure_can_create(principal, new.payer_fin, row.agency_code, foreign_payer=foreign)
    payment_id = str(uuid.uuid4())
    values = {
        "id": payment_id,
        "payer_fin": new.payer_fin,
        "payer_voen": new.payer_voen,
        "payer_passport_country": new.payer_passport.issuing_country if new.payer_passport else None,
        "payer_passport_number": new.payer_passport.number if new.payer_passport else None,
        "confirmation_secret_hash": secret_hash(confirmation_key.secret_for(payment_id)) if foreign else None,
        "quantity": new.quantity,
        "service_code": row.code,
        "service_version": row.version,
        "agency_code": row.agency_code,
        "amount_minor": new.amount_minor,
        "currency": new.currency,
        "reference": new.reference,
        "description": new.description,
        "caller_metadata": new.metadata,
        "status": PaymentStatus.CREATED.value,
        "refunded_minor": 0,
        "created_by_kind": principal.kind.value,
        "created_by_subject": principal.subject,
        "created_at": now,
        "updated_at": now,
        "expire_at": expire_time_for(now),
    }
    session.execute(_INSERT_PAYMENT, {_COLUMN_KEYS[attribute]: value for attribute, value in values.items()})
    # The row as written, to answer from; not in the session (nothing later in the unit of
    # work changes it): the ORM's flush of a new object cost 0.3 ms more than this insert.
    return PaymentRow(**values)


def catalogue_entry_of(row: CatalogueEntryRow) -> CatalogueEntry:
    return CatalogueEntry(
        code=row.code,
        version=row.version,
        name_az=row.name_az,
        name_en=row.name_en,
        agency_code=row.agency_code,
        fee_kind=FeeKind(row.fee_kind),
        fixed_fee_minor=row.fixed_fee_minor,
        min_amount_minor=row.min_amount_minor,
        max_amount_minor=row.max_amount_minor,
        currency=row.currency,
    )
