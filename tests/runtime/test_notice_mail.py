"""Notices to e-mail addresses are mailed by the service's event worker through a real SMTP
server on loopback (the suite's mail drop): each once, with a Message-ID derived from the
notice, retried while the relay refuses for now, given up when it refuses for good, and still
received once when the worker is killed in the middle of sending and started again."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.runtime.db import Database
from services.runtime.mail import Mailer, MailerSettings, Outcome, SmtpRelay, message_id
from services.runtime.notices import MailStatus, add_notice
from tests.support import notice_mail
from tests.support.notice_mail import WELCOME, RecordingDrop
from tests.support.ports import free_ports
from tests.support.workers import WorkerProcess, wait_until
from tools.maildrop import start

WORKER = "tests.support.notice_mail:services"
ROOT = Path(__file__).resolve().parents[2]
# In the past, so that the worker (on the real clock) finds the mails due.
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = Database(database_url, threads=2)
    notice_mail.metadata.create_all(database.engine)
    yield database
    database.close()


class Smtp:
    def __init__(self, drop: RecordingDrop, port: int) -> None:
        self.drop = drop
        self.port = port
        self.url = f"smtp://127.0.0.1:{port}"


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[Smtp]:
    drop = RecordingDrop(tmp_path / "mail")
    (port,) = free_ports(1)
    controller: Controller = start(drop, "127.0.0.1", port)
    yield Smtp(drop, port)
    drop.release.set()
    controller.stop()


def notify(database: Database, email: str | None, number: str, *, fin: str | None = None) -> str | None:
    def unit(session: Session) -> str | None:
        return add_notice(
            session,
            notice_mail.tables,
            WELCOME,
            email=email,
            fin=fin,
            resource_name=f"documents/{number}",
            facts={"name": "Anna", "number": number},
            action_uri=f"/v1/documents/{number}",
            now=NOW,
        )

    return database.run_sync(unit)


def mail_rows(database: Database) -> list[Any]:
    table = notice_mail.tables.notices
    query = select(table).where(table.c.mail_status.is_not(None)).order_by(table.c.resource_name)
    return list(database.run_sync(lambda s: s.execute(query).all()))


def mailer(
    database: Database, smtp_url: str, clock: Callable[[], datetime], outcomes: list[Outcome]
) -> Mailer:
    relay = SmtpRelay(
        "127.0.0.1", int(smtp_url.rpartition(":")[2]), "none", None, None, "ASAN <no-reply@asan.gov.az>", 5.0
    )
    settings = MailerSettings(
        max_attempts=3,
        retry_seconds=60,
        retry_max_seconds=3600,
        lease_seconds=300,
        gateway_url="https://my.gov.az",
    )
    return Mailer(
        database, notice_mail.tables.notices, relay, settings, on_outcome=outcomes.append, clock=clock
    )


def test_each_notice_to_an_address_is_mailed_once_in_three_languages(database: Database, smtp: Smtp) -> None:
    first = notify(database, "anna@example.de", "D-1")
    assert notify(database, "anna@example.de", "D-1") is None  # the same situation again
    notify(database, None, "D-2", fin="5ZK3T9P")  # a citizen's notice: myGov shows it, no mail
    outcomes: list[Outcome] = []
    sender = mailer(database, smtp.url, lambda: NOW, outcomes)

    assert sender.send_due() == [Outcome.SENT]
    assert sender.send_due() == []

    (mail,) = smtp.drop.mails()
    assert mail["Message-ID"] == f"<{first}@mailtest.notices.asan.gov.az>"
    assert mail["To"] == "anna@example.de"
    assert mail["Subject"] == "Welcome, Anna"
    assert mail["Auto-Submitted"] == "auto-generated"
    payload = mail.get_payload(decode=True)
    assert isinstance(payload, bytes)
    text = payload.decode()
    for line in ("Your document D-1 is ready.", "Sənədiniz D-1 hazırdır.", "Ваш документ D-1 готов."):
        assert line in text
    assert "View the document: https://my.gov.az/v1/documents/D-1" in text
    (row,) = mail_rows(database)
    assert (row.mail_status, row.mail_attempts, row.notice) == (MailStatus.SENT, 1, None)
    assert smtp.drop.transmissions == [mail["Message-ID"]]


def test_a_relay_that_is_away_is_tried_again_with_backoff_and_a_refusal_for_good_is_final(
    database: Database, smtp: Smtp
) -> None:
    notify(database, "anna@example.de", "D-1")
    now = [NOW]
    outcomes: list[Outcome] = []
    (closed_port,) = free_ports(1)
    away = mailer(database, f"smtp://127.0.0.1:{closed_port}", lambda: now[0], outcomes)
    assert away.retrying() == 0, "not tried yet"

    assert away.send_due() == [Outcome.RETRY]
    assert away.retrying() == 1
    (row,) = mail_rows(database)
    assert (row.mail_status, row.mail_next_at) == (MailStatus.PENDING, NOW + timedelta(seconds=60))
    assert "ConnectionRefusedError" in row.mail_last_error
    assert away.send_due() == []  # not before its time
    now[0] += timedelta(seconds=60)
    assert away.send_due() == [Outcome.RETRY]
    assert mail_rows(database)[0].mail_next_at == now[0] + timedelta(seconds=120)
    assert away.retrying() == 1, "one mail, however often it was tried"

    now[0] += timedelta(seconds=120)
    back = mailer(database, smtp.url, lambda: now[0], outcomes)
    assert back.send_due() == [Outcome.SENT]
    assert len(smtp.drop.mails()) == 1
    assert back.retrying() == 0

    # A recipient the relay refuses for good (5xx) is not tried again.
    notify(database, "nobody@invalid", "D-2")
    smtp.drop.refused.add("nobody@invalid")
    assert back.send_due() == [Outcome.FAILED]
    failed = mail_rows(database)[1]
    assert (failed.mail_status, failed.mail_attempts) == (MailStatus.FAILED, 1)
    assert back.retrying() == 0, "given up: AsanNoticeMailsFailed's, not waiting"
    assert "550" in failed.mail_last_error
    now[0] += timedelta(days=1)
    assert back.send_due() == []

    # The address fixed at the relay, the operator sends it again (resend-failed-mails): once,
    # with the same Message-ID.
    smtp.drop.refused.clear()
    assert back.resend_failed(since=NOW + timedelta(hours=1)) == 0, "created before then"
    assert back.resend_failed() == 1
    assert back.resend_failed() == 0
    assert back.send_due() == [Outcome.SENT]
    assert [mail["To"] for mail in smtp.drop.mails()] == ["anna@example.de", "nobody@invalid"]
    resent = mail_rows(database)[1]
    assert (resent.mail_status, resent.mail_attempts) == (MailStatus.SENT, 1)


def test_an_operator_makes_the_mails_given_up_due_again_from_the_command_line(
    database: Database, smtp: Smtp
) -> None:
    notify(database, "nobody@invalid", "D-3")
    smtp.drop.refused.add("nobody@invalid")
    assert mailer(database, smtp.url, lambda: NOW, []).send_due() == [Outcome.FAILED]

    env = {
        notice_mail.DATABASE_ENV: database.url.render_as_string(hide_password=False),
        "AMQP_URI": "memory://",
    }
    command = [sys.executable, "-m", "services.runtime.workers", "resend-failed-mails", WORKER]
    done = subprocess.run(
        command, env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    assert "made 1 failed mails of mailtest_notice_mailer due again" in done.stdout
    (row,) = mail_rows(database)
    assert (row.mail_status, row.mail_attempts) == (MailStatus.PENDING, 0)
    assert "550" in row.mail_last_error, "the last error stays, for the record"


@pytest.mark.parametrize("killed_at", ["RCPT", "DATA"])
def test_a_worker_killed_while_sending_and_started_again_leaves_one_mail(
    database: Database, smtp: Smtp, tmp_path: Path, killed_at: str
) -> None:
    """Killed at RCPT the relay had nothing: the mail crosses the wire once. Killed while the
    relay holds the whole DATA (it has the mail, the worker never heard so), the restarted
    worker sends it again, with the same Message-ID, and the mail drop keeps it once: the
    at-least-once edge of SMTP (services.runtime.mail), which the worker logs and counts."""
    env = {
        notice_mail.DATABASE_ENV: database.url.render_as_string(hide_password=False),
        "AMQP_URI": "memory://",
        "ASAN_SMTP_URL": smtp.url,
        "ASAN_MAIL_LEASE_SECONDS": "1",
        "ASAN_MAIL_RETRY_SECONDS": "0.2",
    }
    notify(database, "anna@example.de", "D-1")
    notify(database, "bob@example.org", "D-2")
    smtp.drop.hold_at = killed_at

    first = WorkerProcess(WORKER, env, tmp_path / "worker-1.log")
    try:
        first.wait_ready()
        wait_until(smtp.drop.held.is_set, timeout=30, what=f"the worker at {killed_at}")
        first.process.kill()
        first.process.wait()
    finally:
        first.close()
    smtp.drop.release.set()  # the relay answers a worker that is gone
    (killed,) = [row for row in mail_rows(database) if row.mail_status == MailStatus.SENDING]
    assert (killed.mail_data_at is not None) == (killed_at == "DATA")

    (metrics_port,) = free_ports(1)
    second = WorkerProcess(
        WORKER, {**env, "ASAN_WORKER_METRICS_PORT": str(metrics_port)}, tmp_path / "worker-2.log"
    )
    try:
        second.wait_ready()
        wait_until(
            lambda: [row.mail_status for row in mail_rows(database)] == [MailStatus.SENT] * 2,
            timeout=30,
            what="both mails sent",
        )
        counted = mails_counted(metrics_port)
    finally:
        second.terminate()

    assert sorted(mail["To"] for mail in smtp.drop.mails()) == ["anna@example.de", "bob@example.org"]
    ids = [mail["Message-ID"] for mail in smtp.drop.mails()]
    assert len(set(ids)) == 2
    if killed_at == "RCPT":
        assert sorted(smtp.drop.transmissions) == sorted(ids)
        assert smtp.drop.duplicates == 0
    else:
        assert sorted(smtp.drop.transmissions) == sorted([*ids, killed_message_id(database, killed)])
        assert smtp.drop.duplicates == 1
        assert "sent again" in second.output()
    attempts = {row.notice_id: row.mail_attempts for row in mail_rows(database)}
    assert attempts.pop(killed.notice_id) == 2
    assert list(attempts.values()) == [1]
    # Every outcome is there from the start, at 0 where nothing came to it: the alerts' first
    # mail given up is an increase (deploy/prometheus/rules, AsanNoticeMailsFailed).
    assert counted == {"sent": 2, "retry": 0, "failed": 0, "resent_after_data": int(killed_at == "DATA")}


def mails_counted(metrics_port: int) -> dict[str, float]:
    """asan_notice_mails_total of the worker at `metrics_port`, by outcome."""
    return {
        sample.labels["outcome"]: sample.value
        for sample in mailtest_samples(metrics_port, "asan_notice_mails_total")
    }


def mailtest_samples(metrics_port: int, name: str) -> list[Any]:
    """The samples `name` of the mailtest service on the /metrics of the worker at `metrics_port`."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and sample.labels["source_service"] == "mailtest"
    ]


def test_a_worker_counts_the_mails_waiting_on_a_relay_that_is_away(
    database: Database, smtp: Smtp, tmp_path: Path
) -> None:
    """The count AsanNoticeMailsStuck watches: the mails stay counted while they wait between
    attempts (here ten minutes apart), when no retry is being counted. (That a mail sent or
    given up leaves it: Mailer.retrying, above.)"""
    closed_port, metrics_port = free_ports(2)
    env = {
        notice_mail.DATABASE_ENV: database.url.render_as_string(hide_password=False),
        "AMQP_URI": "memory://",
        "ASAN_SMTP_URL": f"smtp://127.0.0.1:{closed_port}",
        "ASAN_MAIL_RETRY_SECONDS": "600",
        "ASAN_WORKER_METRICS_PORT": str(metrics_port),
    }
    notify(database, "anna@example.de", "D-1")
    notify(database, "bob@example.org", "D-2")

    def retrying() -> float | None:
        samples = mailtest_samples(metrics_port, "asan_notice_mails_retrying")
        return samples[0].value if samples else None

    worker = WorkerProcess(WORKER, env, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        wait_until(lambda: retrying() == 2, timeout=30, what="both mails counted as waiting")
        assert mails_counted(metrics_port)["retry"] == 2
        time.sleep(2)  # ten rounds of the mailer (every 0.2 s here), none of them due
        assert mails_counted(metrics_port)["retry"] == 2, "no attempt meanwhile"
        assert retrying() == 2, "still waiting, still counted"
    finally:
        worker.terminate()


def killed_message_id(database: Database, row: Any) -> str:
    from asan.common.v1.notices_pb2 import CitizenNotice

    return message_id(CitizenNotice(notice_id=row.notice_id, source="mailtest"))


def test_the_relay_url_says_how_to_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASAN_SMTP_URL", "smtp+starttls://notices%40asan:s%3Dcret@relay.asan.gov.az")
    relay = SmtpRelay.from_env()
    assert (relay.host, relay.port, relay.security) == ("relay.asan.gov.az", 587, "starttls")
    assert (relay.username, relay.password) == ("notices@asan", "s=cret")
    monkeypatch.setenv("ASAN_SMTP_URL", "http://relay")
    with pytest.raises(Exception, match="ASAN_SMTP_URL"):
        SmtpRelay.from_env()
