"""Submitting an appeal: the steps of SubmitAppeal, across appeals' database and, for an appeal
about a payment, ASAN ödəniş (links).

First one transaction checks everything the database knows (a replay, the category and its
attributes), then payment is asked whether the payment is the citizen's, and only then the
appeal, its number and its idempotency key commit together: a retry after payment was
unavailable (nothing written) registers the appeal once.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from asan.appeals.v1 import appeals_pb2
from services.appeals import casework, convert, queries, reference
from services.appeals.content import AppealContent, LinkedService, check_attributes
from services.appeals.links import PaymentLinks
from services.runtime.auth import Principal
from services.runtime.db import Database, utcnow
from services.runtime.idempotency import Idempotency, IdempotencyKey
from services.runtime.validation import Violations


class Submission:
    def __init__(self, database: Database, idempotency: Idempotency, payments: PaymentLinks) -> None:
        self.database = database
        self.idempotency = idempotency
        self.payments = payments

    async def submit(
        self,
        key: IdempotencyKey,
        citizen: Principal,
        authorization: str,
        content: AppealContent,
        violations: Violations,
    ) -> tuple[appeals_pb2.Appeal, bool]:
        """The registered appeal, and whether this call registered it (not a replay)."""

        def check(session: Session) -> bytes | casework.Checked:
            stored = self.idempotency.peek(session, key)
            if isinstance(stored, bytes):
                return stored
            return _checked(session, content, violations)

        checked = await self.database.run(check)
        if isinstance(checked, bytes):
            return appeals_pb2.Appeal.FromString(checked), False
        linked = content.linked_object
        if linked is not None and linked.service is LinkedService.PAYMENT:
            await self.payments.ensure_citizens_payment(linked.object_id, authorization)
        registered = False

        def write(session: Session) -> appeals_pb2.Appeal:
            nonlocal registered
            row = casework.register(session, citizen.subject, content, checked, utcnow())
            registered = True
            return convert.appeal(row, for_officer=False)

        return await self.idempotency.run(self.database, key, appeals_pb2.Appeal, write), registered


def _checked(session: Session, content: AppealContent, violations: Violations) -> casework.Checked:
    """Every violation at once: those of the request and those of its category's attributes."""
    row = queries.current_category_row(session, content.category_code)
    if row is None and not violations.has("appeal.category_code"):
        violations.add(
            "appeal.category_code",
            "No category has this code; ListCategories lists them.",
            "UNKNOWN_CATEGORY",
        )
    answers = {}
    if row is not None:
        answers = check_attributes(
            queries.category(row).attributes, content.attributes, violations, "appeal.attributes"
        )
    violations.raise_if_any()
    assert row is not None
    reference.ensure_open_for_appeals(row)
    return casework.Checked(row.version, row.agency_code, answers)
