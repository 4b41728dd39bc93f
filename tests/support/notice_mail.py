"""What the mail tests drive: a service "mailtest" that sends one kind of notice, its worker
target (the runtime's notice mailer over its own database), and the suite's mail drop
recording every DATA that reaches it and able to hold its answer to RCPT or DATA until the
test lets go (to kill the worker right there).

Run the worker: `python -m services.runtime.workers tests.support.notice_mail:services` with
DATABASE_ENV set.
"""

from __future__ import annotations

import asyncio
import os
import threading
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from services.runtime.db import Database, new_metadata
from services.runtime.notices import NoticeTables, Severity, Text, catalogue, define_notice_table
from services.runtime.tables import define_runtime_tables
from tools.maildrop import MailDrop

DATABASE_ENV = "ASAN_TEST_NOTICE_MAIL_DATABASE"
SERVICE = "mailtest"

metadata = new_metadata()
runtime_tables = define_runtime_tables(metadata)
tables = NoticeTables(outbox=runtime_tables.outbox, notices=define_notice_table(metadata))

WELCOME = catalogue(SERVICE).declare(
    "welcome",
    Severity.INFO,
    title=Text(az="Xoş gəldiniz, {name}", en="Welcome, {name}", ru="Добро пожаловать, {name}"),
    body=Text(
        az="Sənədiniz {number} hazırdır.",
        en="Your document {number} is ready.",
        ru="Ваш документ {number} готов.",
    ),
    action=Text(az="Sənədə bax", en="View the document", ru="Открыть документ"),
)


def services() -> list[type]:
    from services.runtime.workers import notice_mailer_service

    database = Database(os.environ[DATABASE_ENV], threads=1)
    return [notice_mailer_service(SERVICE, database, tables.notices, interval_seconds=0.2)]


class RecordingDrop(MailDrop):
    """The mail drop, also noting the Message-ID of every DATA that reached it (`transmissions`,
    duplicates included), and holding its answer at `hold_at` ("RCPT" or "DATA") once, until
    `release` is set (or the client is gone: aiosmtpd then cancels the hold)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.transmissions: list[str] = []
        self.hold_at: str | None = None
        # Recipients answered "550 No such mailbox".
        self.refused: set[str] = set()
        self.held = threading.Event()
        self.release = threading.Event()

    async def _hold(self, command: str) -> None:
        if self.hold_at == command:
            self.hold_at = None
            self.held.set()
            await asyncio.to_thread(self.release.wait)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        await self._hold("RCPT")
        if address in self.refused:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content: bytes = envelope.original_content or envelope.content
        mail = message_from_bytes(content, policy=policy.default)
        self.transmissions.append(str(mail["Message-ID"]))
        # Kept before the answer, as a relay commits a mail to its queue before its 250: held
        # here, the relay has the mail and the worker has not heard so.
        answer = self.keep(mail, content)
        await self._hold("DATA")
        return answer
