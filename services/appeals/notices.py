"""What the citizen is told of their appeal, in az, en and ru: the texts the events carry for
notifications. Dates are written as YYYY-MM-DD (Asia/Baku).

Pure: no I/O, no protobuf.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from services.appeals.catalogue import Names


def registered(number: str, agency: Names, due: date) -> Names:
    return Names(
        az=f"Müraciətiniz {number} qeydə alındı və {agency.az} tərəfindən {due} tarixinədək "
        "cavablandırılacaq.",
        en=f"Your appeal {number} is registered; {agency.in_locale('en')} answers it by {due}.",
        ru=f"Ваше обращение {number} зарегистрировано; {agency.in_locale('ru')} ответит на него до {due}.",
    )


def forwarded(number: str, agency: Names, due: date, reason: str) -> Names:
    return Names(
        az=f"Müraciətiniz {number} səlahiyyətli orqana, {agency.az}, göndərildi ({reason}). "
        f"Cavab müddəti: {due}.",
        en=f"Your appeal {number} was forwarded to the competent body, {agency.in_locale('en')} ({reason}). "
        f"It is answered by {due}.",
        ru=f"Ваше обращение {number} направлено в компетентный орган, {agency.in_locale('ru')} ({reason}). "
        f"Срок ответа: {due}.",
    )


def extended(number: str, due: date, reason: str) -> Names:
    return Names(
        az=f"Müraciətinizə {number} baxılma müddəti {due} tarixinədək uzadıldı: {reason}.",
        en=f"The time to answer your appeal {number} was extended to {due}: {reason}.",
        ru=f"Срок рассмотрения вашего обращения {number} продлён до {due}: {reason}.",
    )


def answered(number: str) -> Names:
    return Names(
        az=f"Müraciətiniz {number} cavablandırıldı. Cavabı qiymətləndirə bilərsiniz.",
        en=f"Your appeal {number} was answered. You may rate the answer.",
        ru=f"На ваше обращение {number} дан ответ. Вы можете оценить ответ.",
    )


def left_unconsidered(number: str, earlier: Sequence[str]) -> Names:
    listed = ", ".join(earlier)
    return Names(
        az=f"Müraciətiniz {number} baxılmamış saxlanıldı: eyni məsələ üzrə bir il ərzində əsaslandırılmış "
        f"cavablar verilib ({listed}) və yeni məlumat yoxdur.",
        en=f"Your appeal {number} is left unconsidered: reasoned answers on the same matter were given "
        f"within a year ({listed}) and it brings no new information.",
        ru=f"Ваше обращение {number} оставлено без рассмотрения: в течение года по тому же вопросу даны "
        f"мотивированные ответы ({listed}), новых сведений нет.",
    )


def reopened(number: str, due: date) -> Names:
    return Names(
        az=f"Müraciətiniz {number} yenidən açıldı və rəhbərliyə ötürüldü. Cavab müddəti: {due}.",
        en=f"Your appeal {number} is reopened and escalated to the supervisors. It is answered by {due}.",
        ru=f"Ваше обращение {number} открыто повторно и передано руководству. Срок ответа: {due}.",
    )


def closed(number: str) -> Names:
    return Names(
        az=f"Müraciətiniz {number} bağlandı.",
        en=f"Your appeal {number} is closed.",
        ru=f"Ваше обращение {number} закрыто.",
    )
