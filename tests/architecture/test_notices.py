"""Every kind of notice of every service says everything in az, en and ru, with the same facts
in each language (services.runtime.notices): a missing translation fails here, not in a
citizen's inbox."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from services.runtime.db import utcnow
from services.runtime.notices import LANGUAGES, NoticeKind, Severity, Text, build_notice, registered_kinds

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"
# Every service's notices module (appeals' own predates the runtime's catalogue and declares none).
NOTICE_MODULES = sorted(
    path.parent.name for path in SERVICES_DIR.glob("*/notices.py") if path.parent.name != "runtime"
)
for _service in NOTICE_MODULES:
    importlib.import_module(f"services.{_service}.notices")
KINDS = registered_kinds()


def test_the_services_that_send_notices_declare_kinds() -> None:
    assert {"payment", "visa"} <= {kind.code.partition(".")[0] for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS, ids=[kind.code for kind in KINDS])
def test_every_kind_is_written_in_az_en_and_ru_with_the_same_facts(kind: NoticeKind) -> None:
    assert kind.problems() == []
    facts = {name: f"<{name}>" for name in kind.title.placeholders("az") | kind.body.placeholders("az")}
    if kind.action is not None:
        facts |= {name: f"<{name}>" for name in kind.action.placeholders("az")}
    notice = build_notice(
        kind,
        fin="5ZK3T9P",
        resource_name="things/1",
        facts=facts,
        action_uri="/v1/things/1" if kind.action else None,
        now=utcnow(),
    )
    for language in LANGUAGES:
        assert getattr(notice.body, language) and getattr(notice.title, language)
        assert "{" not in getattr(notice.body, language)


def test_a_missing_translation_or_a_fact_named_in_one_language_only_is_found() -> None:
    kind = NoticeKind(
        code="test.broken",
        severity=Severity.INFO,
        title=Text(az="Ödəniş {amount}", en="Payment {amount}", ru=" "),
        body=Text(az="{amount} {reference}", en="{amount}", ru="{amount} {reference}"),
    )
    assert kind.problems() == [
        "test.broken title: no ru text",
        "test.broken body: en names the facts ['amount'], az ['amount', 'reference']",
    ]
