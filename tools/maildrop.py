"""A mail drop for one machine: an SMTP server on loopback (aiosmtpd) that keeps each mail it
receives as a file, `<dir>/<Message-ID>.eml`. `make run` starts it as the `mail` process
(var/mail/, port 8025, where ASAN_SMTP_URL points by default); the tests use it too.

A mail whose Message-ID it holds already is a duplicate (services.runtime.mail resends with the
same Message-ID when it cannot know whether the relay took the first): it is counted and
logged, and the first kept, as mail stores do.

    python tools/maildrop.py [--host 127.0.0.1] [--port 8025] [--dir var/mail]

Development and tests only (aiosmtpd is a development dependency): a tool, not in the images.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from services.runtime.config import var_dir
from services.runtime.logs import configure_logging

log = logging.getLogger(__name__)

DEFAULT_PORT = 8025


def file_name(message_id: str) -> str:
    """A file name for a Message-ID: "<a@b>" -> "a@b.eml", anything unsafe as "_"."""
    return re.sub(r"[^A-Za-z0-9@._-]", "_", message_id.strip().strip("<>")) + ".eml"


class MailDrop:
    """The aiosmtpd handler: every accepted mail to a file named by its Message-ID, once."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.duplicates = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content: bytes = envelope.original_content or envelope.content
        return self.keep(message_from_bytes(content, policy=policy.default), content)

    def keep(self, mail: Message, content: bytes) -> str:
        message_id = mail.get("Message-ID")
        if not message_id:
            return "550 5.6.0 A Message-ID is required"
        path = self.directory / file_name(str(message_id))
        with self._lock:
            if path.exists():
                self.duplicates += 1
                log.warning("duplicate mail %s: kept the first", message_id)
                return "250 2.0.0 OK (duplicate, kept the first)"
            path.write_bytes(content)
        log.info("mail received", extra={"message_id": str(message_id), "to": mail.get("To", "")})
        return "250 2.0.0 OK"

    def mails(self) -> list[EmailMessage]:
        """The mails kept, by file name."""
        return [
            message_from_bytes(path.read_bytes(), policy=policy.default)
            for path in sorted(self.directory.glob("*.eml"))
        ]


def start(handler: Any, host: str, port: int) -> Controller:
    """Serves `handler` on host:port in a thread of its own, until `controller.stop()`."""
    controller = Controller(handler, hostname=host, port=port)
    controller.start()
    return controller


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python tools/maildrop.py")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--dir", type=Path, default=None, help="default: <ASAN_VAR_DIR>/mail")
    args = parser.parse_args(argv)
    configure_logging("maildrop", "INFO")
    directory = args.dir or var_dir() / "mail"
    controller = start(MailDrop(directory), args.host, args.port)
    log.info("mail drop on smtp://%s:%d, mails in %s", args.host, args.port, directory)
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    controller.stop()


if __name__ == "__main__":
    main()
