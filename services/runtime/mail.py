"""Mailing the notices to e-mail addresses (services.runtime.notices), by the owning service's
event worker (services.runtime.workers.notice_mailer_service), through the SMTP relay of
ASAN_SMTP_URL.

Each notice is one mail with the Message-ID `<notice id@<service>.notices.asan.gov.az>`:
the same on every attempt. Its row in the service's `notices` table says where it is:

    PENDING --claim--> SENDING --DATA accepted--> SENT
       ^                  |  (the relay said 4xx, or went away: backoff, at most
       +------------------+   ASAN_MAIL_MAX_ATTEMPTS attempts)  --5xx or last attempt--> FAILED

A mail given up is due again, attempts from zero, when an operator says so once the cause
is fixed (`python -m services.runtime.workers resend-failed-mails TARGET`, Mailer.resend_failed).

A claim is a compare-and-set on the row (several replicas may run the worker) that holds the
row for ASAN_MAIL_LEASE_SECONDS; just before the SMTP DATA command the mailer records
`mail_data_at` (the intent: from here on the relay may have the mail), and after the relay's
250 it records SENT. A worker killed in between leaves the row SENDING: after the lease,
the next worker sends it again, with the same Message-ID.

What that guarantees, honestly: a mail is never lost, and it is sent twice only if the worker
dies (or the connection drops) after the relay received the whole DATA and before SENT was
committed, which `mail_data_at` shows and the metric counts (`resent_after_data`). SMTP has no
way to ask the relay whether it took a message; the duplicate carries the same Message-ID,
by which mail stores drop it (the suite's own mail drop, tools/maildrop.py, does). A
death before DATA (while connecting, at MAIL or RCPT) sends it once: the relay discards an
unfinished transaction.
"""

from __future__ import annotations

import enum
import logging
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import unquote, urlsplit

from sqlalchemy import Table, and_, func, or_, select, update

from asan.common.v1 import notices_pb2
from services.runtime.config import ConfigError, env_float, env_int, env_str
from services.runtime.db import Database
from services.runtime.notices import MailStatus

log = logging.getLogger(__name__)

DEFAULT_SMTP_URL = "smtp://127.0.0.1:8025"
DEFAULT_SENDER = "ASAN <no-reply@asan.gov.az>"
LAST_ERROR_LENGTH = 500
# CRLF line ends; headers unfolded up to RFC 5322's limit, so that the Message-ID stays one line.
MAIL_POLICY = policy.SMTP.clone(max_line_length=998)
# Languages in the order a mail shows them: e-mail addressees have no ASAN Login, mostly
# foreign nationals (e-visa applicants), so English first.
MAIL_LANGUAGES = (("en", "English"), ("az", "Azərbaycanca"), ("ru", "Русский"))


class Outcome(enum.StrEnum):
    """What one attempt came to (the metric's `outcome`)."""

    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    # Claimed again after a lease ran out with DATA begun: the relay may have the mail already.
    RESENT_AFTER_DATA = "resent_after_data"


@dataclass(frozen=True)
class SmtpRelay:
    """Where mails go: `smtp://[user:password@]host:port` (plain, as the local mail drop),
    `smtp+starttls://...` (STARTTLS, port 587) or `smtps://...` (TLS from the start, 465)."""

    host: str
    port: int
    security: str  # "none", "starttls", "tls"
    username: str | None
    password: str | None
    sender: str
    timeout: float

    @classmethod
    def from_env(cls) -> SmtpRelay:
        url = env_str("ASAN_SMTP_URL", DEFAULT_SMTP_URL)
        parts = urlsplit(url)
        security = {"smtp": "none", "smtp+starttls": "starttls", "smtps": "tls"}.get(parts.scheme)
        if security is None or not parts.hostname:
            raise ConfigError(
                f"ASAN_SMTP_URL must be smtp://, smtp+starttls:// or smtps://host:port, got {url!r}"
            )
        return cls(
            host=parts.hostname,
            port=parts.port or {"none": 25, "starttls": 587, "tls": 465}[security],
            security=security,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            sender=env_str("ASAN_MAIL_FROM", DEFAULT_SENDER),
            timeout=env_float("ASAN_SMTP_TIMEOUT_SECONDS", 30.0),
        )

    def connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        smtp.ehlo()
        if self.security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if self.username:
            smtp.login(self.username, self.password or "")
        return smtp


def message_id(notice: notices_pb2.CitizenNotice) -> str:
    """The mail's Message-ID, derived from the notice: the same on every attempt."""
    return f"<{notice.notice_id}@{notice.source}.notices.asan.gov.az>"


def compose(notice: notices_pb2.CitizenNotice, sender: str, gateway_url: str) -> EmailMessage:
    """The mail of a notice: the title in English as subject, the text in the three languages."""
    mail = EmailMessage(policy=MAIL_POLICY)
    mail["Message-ID"] = message_id(notice)
    mail["From"] = sender
    mail["To"] = notice.email
    mail["Subject"] = notice.title.en
    mail["Date"] = format_datetime(notice.create_time.ToDatetime(tzinfo=UTC))
    # RFC 3834: no auto-replies to it.
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-ASAN-Notice-Kind"] = notice.kind
    sections = []
    for language, heading in MAIL_LANGUAGES:
        lines = [f"[{heading}]", getattr(notice.title, language), "", getattr(notice.body, language)]
        if notice.HasField("action"):
            uri = notice.action.uri
            link = uri if "://" in uri else f"{gateway_url.rstrip('/')}{uri}"
            lines += ["", f"{getattr(notice.action.label, language)}: {link}"]
        sections.append("\n".join(lines))
    mail.set_content("\n\n".join(sections) + "\n")
    return mail


@dataclass(frozen=True)
class MailerSettings:
    max_attempts: int
    retry_seconds: float
    retry_max_seconds: float
    lease_seconds: float
    # Where an action's gateway route leads in a mail (a person reads it outside any app).
    gateway_url: str

    @classmethod
    def from_env(cls) -> MailerSettings:
        return cls(
            max_attempts=env_int("ASAN_MAIL_MAX_ATTEMPTS", 10),
            retry_seconds=env_float("ASAN_MAIL_RETRY_SECONDS", 30.0),
            retry_max_seconds=3600.0,
            lease_seconds=env_float("ASAN_MAIL_LEASE_SECONDS", 300.0),
            gateway_url=env_str("ASAN_PUBLIC_GATEWAY_URL", "http://127.0.0.1:8080"),
        )

    def backoff(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.retry_seconds * 2 ** max(attempts - 1, 0), self.retry_max_seconds))


class Mailer:
    """Sends the due mails of one service's notices table (one attempt each per call)."""

    def __init__(
        self,
        database: Database,
        notices: Table,
        relay: SmtpRelay,
        settings: MailerSettings,
        *,
        on_outcome: Callable[[Outcome], None] = lambda _: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.database = database
        self.notices = notices
        self.relay = relay
        self.settings = settings
        self.on_outcome = on_outcome
        self.clock = clock

    def send_due(self, limit: int = 20) -> list[Outcome]:
        """Claims and sends up to `limit` due mails, one after the other; what each came to."""
        outcomes = []
        for notice_id in self._due(limit):
            claimed = self._claim(notice_id)
            if claimed is None:
                continue  # another worker took it
            notice, data_begun_before = claimed
            if data_begun_before:
                log.warning(
                    "mail of notice %s sent again: its last attempt died after beginning DATA, so the "
                    "relay may have it already (the same Message-ID lets mail stores drop a duplicate)",
                    notice_id,
                )
                self.on_outcome(Outcome.RESENT_AFTER_DATA)
            outcome = self._send(notice)
            self.on_outcome(outcome)
            outcomes.append(outcome)
        return outcomes

    def resend_failed(self, since: datetime | None = None) -> int:
        """Makes the mails given up (FAILED) since `since` (all if None) due again, attempts from
        zero, for after their cause is fixed (`python -m services.runtime.workers
        resend-failed-mails`); returns how many. Each keeps its Message-ID and its last error."""
        table = self.notices.c
        conditions = [table.mail_status == MailStatus.FAILED, table.notice.is_not(None)]
        if since is not None:
            conditions.append(table.created_at >= since)
        with self.database.transaction() as session:
            result = session.execute(
                update(self.notices)
                .where(*conditions)
                .values(
                    mail_status=MailStatus.PENDING,
                    mail_attempts=0,
                    mail_next_at=self.clock(),
                    mail_data_at=None,
                )
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def retrying(self) -> int:
        """How many mails failed at least once for now (the relay away or refusing for now) and
        wait for their next attempt, or are in one: what AsanNoticeMailsStuck watches. A mail
        in its first attempt, or made due again by `resend_failed`, is not one of them."""
        table = self.notices.c
        query = (
            select(func.count())
            .select_from(self.notices)
            .where(
                or_(
                    and_(table.mail_status == MailStatus.PENDING, table.mail_attempts > 0),
                    and_(table.mail_status == MailStatus.SENDING, table.mail_attempts > 1),
                )
            )
        )
        return self.database.read_sync(lambda session: int(session.execute(query).scalar_one()))

    def _due(self, limit: int) -> list[str]:
        table, now = self.notices.c, self.clock()
        query = (
            select(table.notice_id)
            .where(
                or_(table.mail_status == MailStatus.PENDING, table.mail_status == MailStatus.SENDING),
                table.mail_next_at <= now,
            )
            .order_by(table.mail_next_at)
            .limit(limit)
        )
        with self.database.transaction() as session:
            return list(session.scalars(query))

    def _claim(self, notice_id: str) -> tuple[notices_pb2.CitizenNotice, bool] | None:
        """Takes the row for one attempt (SENDING, held for the lease) if it is still due and
        nobody took it meanwhile; the notice, and whether a previous attempt had begun DATA."""
        table, now = self.notices.c, self.clock()
        with self.database.transaction() as session:
            row = session.execute(
                select(
                    table.mail_status,
                    table.mail_attempts,
                    table.mail_next_at,
                    table.mail_data_at,
                    table.notice,
                ).where(table.notice_id == notice_id)
            ).one_or_none()
            if row is None or row.mail_status not in (MailStatus.PENDING, MailStatus.SENDING):
                return None
            if row.mail_next_at is None or row.mail_next_at > now or row.notice is None:
                return None
            taken = session.execute(
                update(self.notices)
                .where(
                    table.notice_id == notice_id,
                    table.mail_status == row.mail_status,
                    table.mail_attempts == row.mail_attempts,
                )
                .values(
                    mail_status=MailStatus.SENDING,
                    mail_attempts=row.mail_attempts + 1,
                    mail_next_at=now + timedelta(seconds=self.settings.lease_seconds),
                    mail_data_at=None,
                )
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                return None
        data_begun = row.mail_status == MailStatus.SENDING and row.mail_data_at is not None
        return notices_pb2.CitizenNotice.FromString(row.notice), data_begun

    def _send(self, notice: notices_pb2.CitizenNotice) -> Outcome:
        mail = compose(notice, self.relay.sender, self.settings.gateway_url)
        try:
            with self.relay.connect() as smtp:
                _expect(smtp.mail(self.relay.sender), {250})
                _expect(smtp.rcpt(notice.email), {250, 251})
                self._record(notice.notice_id, mail_data_at=self.clock())
                _expect(smtp.data(mail.as_bytes()), {250})
        except Exception as error:
            return self._failed(notice, error)
        self._record(
            notice.notice_id,
            mail_status=MailStatus.SENT,
            mail_sent_at=self.clock(),
            mail_next_at=None,
            notice=None,
        )
        log.info("mailed notice", extra={"notice_id": notice.notice_id, "kind": notice.kind})
        return Outcome.SENT

    def _failed(self, notice: notices_pb2.CitizenNotice, error: Exception) -> Outcome:
        reason = f"{type(error).__name__}: {error}"[:LAST_ERROR_LENGTH]
        permanent = isinstance(error, smtplib.SMTPResponseException) and 500 <= error.smtp_code < 600
        with self.database.transaction() as session:
            attempts = session.execute(
                select(self.notices.c.mail_attempts).where(self.notices.c.notice_id == notice.notice_id)
            ).scalar_one()
        if permanent or attempts >= self.settings.max_attempts:
            self._record(
                notice.notice_id, mail_status=MailStatus.FAILED, mail_next_at=None, mail_last_error=reason
            )
            log.error("gave up mailing notice %s after %d attempts: %s", notice.notice_id, attempts, reason)
            return Outcome.FAILED
        retry_at = self.clock() + self.settings.backoff(attempts)
        self._record(
            notice.notice_id, mail_status=MailStatus.PENDING, mail_next_at=retry_at, mail_last_error=reason
        )
        log.warning(
            "could not mail notice %s (attempt %d of %d), retrying at %s: %s",
            notice.notice_id,
            attempts,
            self.settings.max_attempts,
            retry_at.isoformat(),
            reason,
        )
        return Outcome.RETRY

    def _record(self, notice_id: str, **values: object) -> None:
        with self.database.transaction() as session:
            session.execute(
                update(self.notices).where(self.notices.c.notice_id == notice_id).values(**values)
            )


def _expect(reply: tuple[int, bytes], codes: set[int]) -> None:
    code, text = reply
    if code not in codes:
        raise smtplib.SMTPResponseException(code, text)
