"""What the citizen is told of their appeal, in az, en and ru (services.runtime.notices): each
step the citizen sees is a kind of CitizenNotice, sent in the step's transaction, and the same
text is the AppealNotice its event carries. Dates are written as YYYY-MM-DD (Asia/Baku).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from services.appeals.catalogue import Names
from services.runtime.notices import NoticeKind, Severity, Text, catalogue

kinds = catalogue("appeals")

_VIEW = Text(az="Müraciətə bax", en="View the appeal", ru="Открыть обращение")

REGISTERED = kinds.declare(
    "appeal_registered",
    Severity.INFO,
    title=Text(
        az="Müraciət {number} qeydə alındı",
        en="Appeal {number} registered",
        ru="Обращение {number} зарегистрировано",
    ),
    body=Text(
        az="Müraciətiniz {number} qeydə alındı və {agency} tərəfindən {due} tarixinədək cavablandırılacaq.",
        en="Your appeal {number} is registered; {agency} answers it by {due}.",
        ru="Ваше обращение {number} зарегистрировано; {agency} ответит на него до {due}.",
    ),
    action=_VIEW,
)

FORWARDED = kinds.declare(
    "appeal_forwarded",
    Severity.INFO,
    title=Text(
        az="Müraciət {number} göndərildi",
        en="Appeal {number} forwarded",
        ru="Обращение {number} направлено",
    ),
    body=Text(
        az="Müraciətiniz {number} səlahiyyətli orqana, {agency}, göndərildi ({reason}). "
        "Cavab müddəti: {due}.",
        en="Your appeal {number} was forwarded to the competent body, {agency} ({reason}). "
        "It is answered by {due}.",
        ru="Ваше обращение {number} направлено в компетентный орган, {agency} ({reason}). "
        "Срок ответа: {due}.",
    ),
    action=_VIEW,
)

EXTENDED = kinds.declare(
    "appeal_extended",
    Severity.INFO,
    title=Text(
        az="Müraciət {number}: müddət uzadıldı",
        en="Appeal {number}: time extended",
        ru="Обращение {number}: срок продлён",
    ),
    body=Text(
        az="Müraciətinizə {number} baxılma müddəti {due} tarixinədək uzadıldı: {reason}.",
        en="The time to answer your appeal {number} was extended to {due}: {reason}.",
        ru="Срок рассмотрения вашего обращения {number} продлён до {due}: {reason}.",
    ),
    action=_VIEW,
)

ANSWERED = kinds.declare(
    "appeal_answered",
    Severity.INFO,
    title=Text(
        az="Müraciət {number} cavablandırıldı",
        en="Appeal {number} answered",
        ru="На обращение {number} дан ответ",
    ),
    body=Text(
        az="Müraciətiniz {number} cavablandırıldı. Cavabı qiymətləndirə bilərsiniz.",
        en="Your appeal {number} was answered. You may rate the answer.",
        ru="На ваше обращение {number} дан ответ. Вы можете оценить ответ.",
    ),
    action=_VIEW,
)

LEFT_UNCONSIDERED = kinds.declare(
    "appeal_left_unconsidered",
    Severity.WARNING,
    title=Text(
        az="Müraciət {number} baxılmamış saxlanıldı",
        en="Appeal {number} left unconsidered",
        ru="Обращение {number} оставлено без рассмотрения",
    ),
    body=Text(
        az="Müraciətiniz {number} baxılmamış saxlanıldı: eyni məsələ üzrə bir il ərzində əsaslandırılmış "
        "cavablar verilib ({earlier}) və yeni məlumat yoxdur.",
        en="Your appeal {number} is left unconsidered: reasoned answers on the same matter were given "
        "within a year ({earlier}) and it brings no new information.",
        ru="Ваше обращение {number} оставлено без рассмотрения: в течение года по тому же вопросу даны "
        "мотивированные ответы ({earlier}), новых сведений нет.",
    ),
    action=_VIEW,
)

REOPENED = kinds.declare(
    "appeal_reopened",
    Severity.INFO,
    title=Text(
        az="Müraciət {number} yenidən açıldı",
        en="Appeal {number} reopened",
        ru="Обращение {number} открыто повторно",
    ),
    body=Text(
        az="Müraciətiniz {number} yenidən açıldı və rəhbərliyə ötürüldü. Cavab müddəti: {due}.",
        en="Your appeal {number} is reopened and escalated to the supervisors. It is answered by {due}.",
        ru="Ваше обращение {number} открыто повторно и передано руководству. Срок ответа: {due}.",
    ),
    action=_VIEW,
)

CLOSED = kinds.declare(
    "appeal_closed",
    Severity.INFO,
    title=Text(az="Müraciət {number} bağlandı", en="Appeal {number} closed", ru="Обращение {number} закрыто"),
    body=Text(
        az="Müraciətiniz {number} bağlandı.",
        en="Your appeal {number} is closed.",
        ru="Ваше обращение {number} закрыто.",
    ),
    action=_VIEW,
)


@dataclass(frozen=True)
class Told:
    """What a step tells the citizen: a kind of notice and its facts."""

    kind: NoticeKind
    facts: Mapping[str, str | Text]

    @property
    def text(self) -> Names:
        """The body in the three languages, as the AppealNotice of the step's event carries it."""
        rendered = self.kind.body.render(self.facts)
        return Names(az=rendered.az, en=rendered.en, ru=rendered.ru)


def _agency(name: Names) -> Text:
    return Text(az=name.az, en=name.in_locale("en"), ru=name.in_locale("ru"))


def registered(number: str, agency: Names, due: date) -> Told:
    return Told(REGISTERED, {"number": number, "agency": _agency(agency), "due": str(due)})


def forwarded(number: str, agency: Names, due: date, reason: str) -> Told:
    return Told(FORWARDED, {"number": number, "agency": _agency(agency), "due": str(due), "reason": reason})


def extended(number: str, due: date, reason: str) -> Told:
    return Told(EXTENDED, {"number": number, "due": str(due), "reason": reason})


def answered(number: str) -> Told:
    return Told(ANSWERED, {"number": number})


def left_unconsidered(number: str, earlier: Sequence[str]) -> Told:
    return Told(LEFT_UNCONSIDERED, {"number": number, "earlier": ", ".join(earlier)})


def reopened(number: str, due: date) -> Told:
    return Told(REOPENED, {"number": number, "due": str(due)})


def closed(number: str) -> Told:
    return Told(CLOSED, {"number": number})
