"""Notices to people (`asan.common.v1.CitizenNotice`): what each service may tell, in az, en
and ru, and the one way to send it.

A service declares its kinds of notice in its own `notices.py`, on its catalogue:

    from services.runtime.notices import Severity, Text, catalogue

    kinds = catalogue("payment")
    PAYMENT_SUCCEEDED = kinds.declare(
        "payment_succeeded",                        # the kind code is "payment.payment_succeeded"
        Severity.INFO,
        title=Text(az="...", en="Payment received", ru="..."),
        body=Text(az="...{amount}...", en="We received {amount} for {service}.", ru="..."),
        action=Text(az="Qəbz", en="Receipt", ru="Квитанция"),
    )

and in the unit of work that makes the state change, adds the notice beside it:

    add_notice(session, notice_tables, PAYMENT_SUCCEEDED, fin=payer_fin,
               resource_name=f"payments/{payment_id}", facts={"amount": "60.00 AZN", ...},
               action_uri=f"/v1/payments/{payment_id}/receipt", now=paid_at)

`add_notice` derives the notice id from the kind, the resource and the occasion, records it
in the service's `notices` table (so that the same situation never gives a second notice,
whatever replays or sweeps come later) and puts it in the outbox with the id as its event id.
The service's outbox relay publishes it on the notices exchange (ASAN_NOTICES_EXCHANGE,
default "asan.notices", routing key = the kind code), where myGov consumes one stream of
every service. A notice to an e-mail address is also mailed by the service's event worker
(services.runtime.mail).

Templates are `str.format` templates over named facts; a fact that differs by language
(a reason's text) is given as a `Text`. Every kind must say everything in the three
languages, with the same facts: `Text.problems` names what is missing, and
tests/architecture/test_notices.py checks every kind of every service.
"""

from __future__ import annotations

import enum
import string
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Index, Integer, LargeBinary, MetaData, String, Table
from sqlalchemy.orm import Session

from asan.common.v1 import notices_pb2
from services.runtime import protos
from services.runtime.config import env_str
from services.runtime.db import UtcDateTime
from services.runtime.events import add_event, insert_if_absent
from services.runtime.field_behavior import missing_required

LANGUAGES = ("az", "en", "ru")
# The envelope's event_type of a notice in an outbox: the relay routes it to the notices
# exchange instead of the service's own event exchange.
NOTICE_EVENT_TYPE = notices_pb2.CitizenNotice.DESCRIPTOR.name
NOTICES_EXCHANGE_VARIABLE = "ASAN_NOTICES_EXCHANGE"
DEFAULT_NOTICES_EXCHANGE = "asan.notices"
# Notice ids are UUIDv5 in this namespace: the same situation, the same id, in any replica.
NOTICE_NAMESPACE = uuid.UUID("0c2f6a1e-5d3b-4b8e-9f41-7a6c2d1e8b90")


def notices_exchange_name() -> str:
    return env_str(NOTICES_EXCHANGE_VARIABLE, DEFAULT_NOTICES_EXCHANGE)


class Severity(enum.Enum):
    """asan.common.v1.NoticeSeverity."""

    INFO = notices_pb2.NOTICE_SEVERITY_INFO
    WARNING = notices_pb2.NOTICE_SEVERITY_WARNING
    URGENT = notices_pb2.NOTICE_SEVERITY_URGENT


@dataclass(frozen=True)
class Text:
    """A text, or a template of one, in the three languages."""

    az: str
    en: str
    ru: str

    def in_language(self, language: str) -> str:
        text: str = getattr(self, language)
        return text

    def placeholders(self, language: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(self.in_language(language)) if name}

    def problems(self) -> list[str]:
        """What is wrong with it as a template: a language left empty, a language naming other
        facts than the others."""
        found = [f"no {language} text" for language in LANGUAGES if not self.in_language(language).strip()]
        reference = self.placeholders("az")
        for language in LANGUAGES[1:]:
            if self.in_language(language).strip() and self.placeholders(language) != reference:
                named = sorted(self.placeholders(language))
                found.append(f"{language} names the facts {named}, az {sorted(reference)}")
        return found

    def render(self, facts: Mapping[str, str | Text]) -> notices_pb2.LocalizedText:
        """The text with the facts put in, each language with the facts of its own language."""
        rendered = {}
        for language in LANGUAGES:
            values = {
                name: value.in_language(language) if isinstance(value, Text) else value
                for name, value in facts.items()
            }
            rendered[language] = self.in_language(language).format_map(values)
        return notices_pb2.LocalizedText(**rendered)


@dataclass(frozen=True)
class NoticeKind:
    """One kind of notice a service sends, with its texts."""

    code: str
    severity: Severity
    title: Text
    body: Text
    # The label of the notice's action; None for a kind that leads nowhere.
    action: Text | None = None

    def problems(self) -> list[str]:
        texts = {"title": self.title, "body": self.body}
        if self.action is not None:
            texts["action"] = self.action
        return [
            f"{self.code} {part}: {problem}" for part, text in texts.items() for problem in text.problems()
        ]


@dataclass
class NoticeCatalogue:
    """The kinds of notice of one service (its `notices.py` declares them)."""

    service: str
    kinds: dict[str, NoticeKind] = field(default_factory=dict)

    def declare(
        self, name: str, severity: Severity, *, title: Text, body: Text, action: Text | None = None
    ) -> NoticeKind:
        code = f"{self.service}.{name}"
        if code in self.kinds:
            raise ValueError(f"notice kind {code} declared twice")
        kind = NoticeKind(code=code, severity=severity, title=title, body=body, action=action)
        self.kinds[code] = kind
        return kind


_CATALOGUES: dict[str, NoticeCatalogue] = {}


def catalogue(service: str) -> NoticeCatalogue:
    """The catalogue of `service`'s notice kinds, registered with the runtime."""
    return _CATALOGUES.setdefault(service, NoticeCatalogue(service))


def registered_kinds() -> list[NoticeKind]:
    """Every kind declared by the services imported so far."""
    return [kind for catalogue_ in _CATALOGUES.values() for kind in catalogue_.kinds.values()]


# --- Sending --------------------------------------------------------------------------------------


class MailStatus(enum.StrEnum):
    """Where the mail of a notice to an e-mail address is (services.runtime.mail)."""

    PENDING = "PENDING"
    SENDING = "SENDING"
    SENT = "SENT"
    FAILED = "FAILED"


def define_notice_table(metadata: MetaData) -> Table:
    """The `notices` table of a service that sends notices: one row per notice ever sent (the
    dedupe), and for a notice to an e-mail address the state of its mail."""
    return Table(
        "notices",
        metadata,
        Column("notice_id", String(36), primary_key=True),
        Column("kind", String(100), nullable=False),
        Column("resource_name", String(200), nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        # Serialised asan.common.v1.CitizenNotice, for the mailer; NULL once mailed or when
        # there is nothing to mail (a FIN addressee: myGov shows it).
        Column("notice", LargeBinary, nullable=True),
        # MailStatus; NULL when the addressee is a FIN.
        Column("mail_status", String(10), nullable=True),
        Column("mail_attempts", Integer, nullable=False, default=0),
        # PENDING: not before then; SENDING: the lease of the sender, reclaimed after it.
        Column("mail_next_at", UtcDateTime, nullable=True),
        # When the mailer began the SMTP DATA of its last attempt: from then the relay may
        # hold the mail, though the mailer has not heard so.
        Column("mail_data_at", UtcDateTime, nullable=True),
        Column("mail_sent_at", UtcDateTime, nullable=True),
        Column("mail_last_error", String(500), nullable=True),
        Index("ix_notices_mail_due", "mail_status", "mail_next_at"),
    )


@dataclass(frozen=True)
class NoticeTables:
    """Where a service's notices go: its outbox and its notices table."""

    outbox: Table
    notices: Table


def notice_id_for(kind: NoticeKind, resource_name: str, occasion: str = "") -> str:
    """The id of the notice of `kind` about `resource_name` on `occasion` (for kinds that can
    happen more than once to a resource: a refund's id, the day of a reminder)."""
    return str(uuid.uuid5(NOTICE_NAMESPACE, f"{kind.code}|{resource_name}|{occasion}"))


def build_notice(
    kind: NoticeKind,
    *,
    fin: str | None = None,
    email: str | None = None,
    resource_name: str,
    occasion: str = "",
    facts: Mapping[str, str | Text] | None = None,
    action_uri: str | None = None,
    due: datetime | None = None,
    now: datetime,
) -> notices_pb2.CitizenNotice:
    """The notice of `kind` to a FIN or an e-mail address (exactly one), its texts rendered
    with `facts`. Raises ValueError for a notice the contract would not accept."""
    if (fin is None) == (email is None):
        raise ValueError("a notice goes to a FIN or to an e-mail address, exactly one")
    if (action_uri is None) != (kind.action is None):
        raise ValueError(f"{kind.code}: an action_uri goes with a kind that has an action label")
    facts = facts or {}
    notice = notices_pb2.CitizenNotice(
        notice_id=notice_id_for(kind, resource_name, occasion),
        kind=kind.code,
        severity=kind.severity.value,
        title=kind.title.render(facts),
        body=kind.body.render(facts),
        source=kind.code.partition(".")[0],
        resource_name=resource_name,
        create_time=protos.timestamp(now),
    )
    if fin is not None:
        notice.fin = fin
    else:
        notice.email = email or ""
    if kind.action is not None and action_uri is not None:
        notice.action.uri = action_uri
        notice.action.label.CopyFrom(kind.action.render(facts))
    if due is not None:
        notice.due_time.FromDatetime(due.astimezone(UTC))
    missing = missing_required(notice)
    if missing or not notice.WhichOneof("addressee"):
        raise ValueError(f"{kind.code}: the notice lacks {missing or ['an addressee']}")
    return notice


def add_notice(
    session: Session,
    tables: NoticeTables,
    kind: NoticeKind,
    *,
    fin: str | None = None,
    email: str | None = None,
    resource_name: str,
    occasion: str = "",
    facts: Mapping[str, str | Text] | None = None,
    action_uri: str | None = None,
    due: datetime | None = None,
    now: datetime,
) -> str | None:
    """Sends the notice (`build_notice`) in the caller's transaction: recorded in the notices
    table and added to the outbox, with the mail to come for an e-mail address. Returns its id,
    or None when this notice was sent before (nothing is added then)."""
    notice = build_notice(
        kind,
        fin=fin,
        email=email,
        resource_name=resource_name,
        occasion=occasion,
        facts=facts,
        action_uri=action_uri,
        due=due,
        now=now,
    )
    values: dict[str, Any] = {
        "notice_id": notice.notice_id,
        "kind": kind.code,
        "resource_name": resource_name,
        "created_at": now,
        "mail_attempts": 0,
    }
    if email is not None:
        values |= {
            "notice": notice.SerializeToString(),
            "mail_status": MailStatus.PENDING,
            "mail_next_at": now,
        }
    if not insert_if_absent(session, tables.notices, values):
        return None
    add_event(session, tables.outbox, notice.source, notice, event_id=notice.notice_id)
    return notice.notice_id


def notice_routing_key(body: dict[str, Any]) -> str:
    """The routing key of a notice on the notices exchange, from its AMQP body (the envelope's
    JSON): the kind code. KeyError if the body is no notice."""
    kind: str = body["payload"]["kind"]
    return kind
