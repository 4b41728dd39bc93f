"""The e-visa document: one A4 page that the traveller prints and a border officer reads, with
labels in Azerbaijani and English, the holder's name as printed in the passport (in any script:
the DejaVu fonts under fonts/ are embedded, subset to the letters used) and its Latin
transliteration, and the verification code as a QR code.

`evisa_document` gathers the printed facts from the tables; `render_pdf` draws them. Rendering
takes about a tenth of a second of CPU, so the server runs it through
`services.visa.rendering`, off the event loop.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import segno
from google.api import annotations_pb2, http_pb2
from PIL import Image
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from asan.visa.v1 import visa_service_pb2
from services.runtime.baku_time import baku_date
from services.visa.domain import EVISA_STAY_DAYS
from services.visa.signing import SIGNATURE_LENGTH, SignedVisa

if TYPE_CHECKING:
    # Only for the signature: the rendering processes import this module and need no ORM.
    from services.visa.tables import ApplicantRow, ApplicationRow

FONTS = Path(__file__).parent / "fonts"
REGULAR, BOLD, MONO = "DejaVuSans", "DejaVuSans-Bold", "DejaVuSansMono"


def _verification_route() -> str:
    """The public route that returns the verification key, as the contract binds it."""
    method = visa_service_pb2.DESCRIPTOR.services_by_name["VisaService"].methods_by_name["GetVerificationKey"]
    http_rule: Any = annotations_pb2.http  # the type stubs type the extension loosely
    rule: http_pb2.HttpRule = method.GetOptions().Extensions[http_rule]
    return f"GET {rule.get}"


VERIFICATION_ROUTE = _verification_route()


@dataclass(frozen=True)
class EVisaDocument:
    """What the document prints. Frozen and hashable: the rendered PDF is cached by it."""

    visa_number: str
    application_number: str
    surname: str  # as in the passport, any script
    given_names: str
    latin_name: str  # the transliteration the verification code signs: "MAMMADOVA AYGUN"
    date_of_birth: date
    sex: str  # stored name: FEMALE, MALE, X
    nationality: str  # ISO 3166-1 alpha-3
    nationality_name: str  # English, from the country table; empty when unknown
    passport_number: str
    passport_expiry: date
    entries: int
    valid_from: date
    valid_until: date
    stay_days: int
    purpose: str  # stored name: TOURISM, BUSINESS, ...
    issue_date: date  # Baku date of the approval
    verification_code: str
    key_id: str  # of the key that signed the code


def evisa_document(
    applicant: ApplicantRow, application: ApplicationRow, country_name: str
) -> EVisaDocument | None:
    """The printed facts of an approved applicant's e-visa; None before approval."""
    if (
        applicant.visa_number is None
        or applicant.verification_code is None
        or applicant.valid_from is None
        or applicant.valid_until is None
        or applicant.decided_at is None
    ):
        return None
    signed = signed_facts(applicant.verification_code)
    return EVisaDocument(
        visa_number=applicant.visa_number,
        application_number=application.number,
        surname=applicant.surname,
        given_names=applicant.given_names,
        latin_name=signed.name,
        date_of_birth=applicant.date_of_birth,
        sex=applicant.sex,
        nationality=applicant.nationality,
        nationality_name=country_name,
        passport_number=applicant.passport_number,
        passport_expiry=applicant.passport_expiry,
        entries=signed.entries,
        valid_from=applicant.valid_from,
        valid_until=applicant.valid_until,
        stay_days=EVISA_STAY_DAYS,
        purpose=application.purpose,
        issue_date=baku_date(applicant.decided_at),
        verification_code=applicant.verification_code,
        key_id=signed.key_id,
    )


def signed_facts(code: str) -> SignedVisa:
    """The facts a code carries, read without checking its signature: the service printing its
    own code needs its key id and name, not proof (border posts check it)."""
    raw = base64.urlsafe_b64decode(code + "=" * (-len(code) % 4))
    return SignedVisa.from_payload(raw[:-SIGNATURE_LENGTH])


# --- What the page says, in Azerbaijani and English --------------------------------------------

COUNTRY = "AZƏRBAYCAN RESPUBLİKASI / REPUBLIC OF AZERBAIJAN"
TITLE = "ELEKTRON VİZA / ELECTRONIC VISA"
HOLDER = "VİZA SAHİBİ / VISA HOLDER"
VISA = "VİZA / VISA"
VERIFICATION = "YOXLAMA / VERIFICATION"

SEXES = {"FEMALE": "Qadın / Female (F)", "MALE": "Kişi / Male (M)", "X": "Göstərilməyib / Unspecified (X)"}
PURPOSES = {
    "TOURISM": "Turizm / Tourism",
    "BUSINESS": "İşgüzar səfər / Business",
    "PRIVATE_VISIT": "Şəxsi səfər / Private visit",
    "EVENT": "İdman, mədəniyyət və ya elm tədbiri / Sport, culture or science event",
    "MEDICAL": "Müalicə / Medical treatment",
}


def _holder_rows(visa: EVisaDocument) -> list[tuple[str, str]]:
    nationality = visa.nationality
    if visa.nationality_name:
        nationality = f"{visa.nationality} – {visa.nationality_name}"
    return [
        ("Soyadı / Surname", visa.surname),
        ("Adı / Given names", visa.given_names or "–"),
        ("Latın hərfləri ilə / In Latin letters", visa.latin_name),
        ("Doğum tarixi / Date of birth", visa.date_of_birth.isoformat()),
        ("Cinsi / Sex", SEXES.get(visa.sex, visa.sex)),
        ("Vətəndaşlığı / Nationality", nationality),
        ("Pasport nömrəsi / Passport number", visa.passport_number),
        ("Pasportun bitmə tarixi / Passport expiry date", visa.passport_expiry.isoformat()),
    ]


def _visa_rows(visa: EVisaDocument) -> list[tuple[str, str]]:
    entries = "Birdəfəlik / Single entry" if visa.entries == 1 else f"{visa.entries}"
    return [
        ("Viza nömrəsi / Visa number", visa.visa_number),
        ("Müraciət nömrəsi / Application number", visa.application_number),
        ("Vizanın növü / Visa type", "Elektron viza / Electronic visa (e-visa)"),
        ("Girişlərin sayı / Number of entries", entries),
        ("Etibarlılıq başlanğıcı / Valid from", visa.valid_from.isoformat()),
        ("Etibarlılıq sonu / Valid until", visa.valid_until.isoformat()),
        ("Qalma müddəti / Duration of stay", f"{visa.stay_days} gün / {visa.stay_days} days"),
        ("Səfərin məqsədi / Purpose of visit", PURPOSES.get(visa.purpose, visa.purpose)),
        ("Verilmə tarixi / Date of issue", visa.issue_date.isoformat()),
    ]


KEY_ID_LABEL = "Açarın identifikatoru / Key id"
HOW_TO_VERIFY_LABEL = "Necə yoxlamalı / How to verify"
CODE_LABEL = "Yoxlama kodu / Verification code"


def _how_to_verify() -> list[str]:
    return [
        "QR kod Ed25519 ilə imzalanıb: imzanı bu identifikatorlu açıq açarla yoxlayın, "
        f"açar {VERIFICATION_ROUTE} ünvanında dərc olunur.",
        "The QR code is signed with Ed25519: check the signature with the public key of this id, "
        f"published at {VERIFICATION_ROUTE}.",
    ]


FOOTER = [
    "Sərhəddə pasportla birlikdə təqdim edin. Sənəd elektron qaydada verilib; imza və möhür tələb olunmur.",
    "Present it with your passport at the border. Issued electronically; valid without signature or stamp.",
]


# --- The page ----------------------------------------------------------------------------------

PAGE_WIDTH, PAGE_HEIGHT = A4
# 15 mm on every side: more than office and home printers leave unprinted (about 5 mm).
MARGIN = 15 * mm
CONTENT_WIDTH = PAGE_WIDTH - 2 * MARGIN
LABEL_WIDTH = 74 * mm
VALUE_X = MARGIN + LABEL_WIDTH + 3 * mm
VALUE_WIDTH = PAGE_WIDTH - MARGIN - VALUE_X
LABEL_SIZE, VALUE_SIZE, NAME_SIZE = 8.5, 11.0, 12.5
# A long name is set smaller, down to this size, to stay within two lines.
SMALLEST_NAME_SIZE = 8.0
ROW_PADDING = 1.5 * mm
SECTION_HEIGHT = 6.5 * mm
SECTION_GAP = 3 * mm
# 55 mm at about 80 modules (a long name's code) is 0.7 mm a module: phones read it from paper.
QR_SIZE = 55 * mm
QR_PIXELS_PER_MODULE = 8
CODE_SIZE, SMALLEST_CODE_SIZE = 6.5, 4.0
FOOTER_SIZE = 7.5
FOOTER_LEADING = 3.6 * mm
INK, GREY, RULE, BAND = 0.0, 0.3, 0.7, 0.9
# The verification block sits at the same place on every e-visa, above the footer; the facts
# fill the page from the top down to it.
FOOTER_TOP = MARGIN + len(FOOTER) * FOOTER_LEADING
VERIFICATION_TOP = FOOTER_TOP + 3 * mm + QR_SIZE + 2 * mm + SECTION_HEIGHT
HEADER_HEIGHT = 20 * mm


@dataclass(frozen=True)
class _Row:
    label_lines: list[str]
    value_lines: list[str]
    size: float

    @property
    def height(self) -> float:
        text = max(len(self.label_lines) * LABEL_SIZE * 1.25, len(self.value_lines) * self.size * 1.2)
        return text + 2 * ROW_PADDING


def render_pdf(visa: EVisaDocument) -> bytes:
    """The e-visa as the applicant downloads and prints it: one A4 page."""
    _register_fonts()
    buffer = io.BytesIO()
    # Every font embedded, the initial one too: the standard Helvetica is not in every printer.
    pdf = Canvas(
        buffer,
        pagesize=A4,
        invariant=True,
        pageCompression=1,
        initialFontName=REGULAR,  # type: ignore[arg-type]  # the stubs declare a number
    )
    pdf.setTitle(f"E-visa {visa.visa_number}")
    pdf.setAuthor("ASAN Viza")
    pdf.setSubject(TITLE)
    y = _header(pdf, PAGE_HEIGHT - MARGIN)
    holder, facts = _fitted_rows(visa, room=y - VERIFICATION_TOP)
    y = _section(pdf, y, HOLDER)
    for row in holder:
        y = _row(pdf, y, row)
    y = _section(pdf, y - SECTION_GAP, VISA)
    for row in facts:
        y = _row(pdf, y, row)
    _section(pdf, VERIFICATION_TOP, VERIFICATION)
    _verification(pdf, VERIFICATION_TOP - SECTION_HEIGHT - 2 * mm, visa)
    _footer(pdf)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _fitted_rows(visa: EVisaDocument, room: float) -> tuple[list[_Row], list[_Row]]:
    """The rows of both sections, the names set as large as two lines allow, and smaller still
    if the longest names the rules accept would not leave room for the verification block."""
    facts = [_fitted(label, value, VALUE_SIZE, VALUE_SIZE) for label, value in _visa_rows(visa)]
    fixed = 2 * SECTION_HEIGHT + SECTION_GAP + sum(row.height for row in facts)
    floor = SMALLEST_NAME_SIZE
    while True:
        holder = [
            _fitted(label, value, NAME_SIZE if index < 3 else VALUE_SIZE, floor)
            for index, (label, value) in enumerate(_holder_rows(visa))
        ]
        if fixed + sum(row.height for row in holder) <= room or floor <= 4:
            return holder, facts
        floor -= 1


def _fitted(label: str, value: str, size: float, floor: float) -> _Row:
    labels = wrap(label, REGULAR, LABEL_SIZE, LABEL_WIDTH - 2 * mm)
    while size > floor and len(wrap(value, BOLD, size, VALUE_WIDTH)) > 2:
        size = max(floor, size - 0.5)
    return _Row(labels, wrap(value, BOLD, size, VALUE_WIDTH), size)


def _register_fonts() -> None:
    if REGULAR in pdfmetrics.getRegisteredFontNames():
        return
    for name in (REGULAR, BOLD, MONO):
        pdfmetrics.registerFont(TTFont(name, FONTS / f"{name}.ttf"))


def _header(pdf: Canvas, top: float) -> float:
    middle = PAGE_WIDTH / 2
    pdf.setFillGray(INK)
    pdf.setFont(BOLD, 10.5)
    pdf.drawCentredString(middle, top - 4 * mm, COUNTRY)
    pdf.setFont(BOLD, 20)
    pdf.drawCentredString(middle, top - 13 * mm, TITLE)
    y = top - HEADER_HEIGHT + 3 * mm
    pdf.setStrokeGray(INK)
    pdf.setLineWidth(1.2)
    pdf.line(MARGIN, y, PAGE_WIDTH - MARGIN, y)
    return top - HEADER_HEIGHT


def _section(pdf: Canvas, top: float, title: str) -> float:
    pdf.setFillGray(BAND)
    pdf.rect(MARGIN, top - SECTION_HEIGHT, CONTENT_WIDTH, SECTION_HEIGHT, stroke=0, fill=1)
    pdf.setFillGray(INK)
    pdf.setFont(BOLD, 9.5)
    pdf.drawString(MARGIN + 2 * mm, top - SECTION_HEIGHT + 2.1 * mm, title)
    return top - SECTION_HEIGHT


def _row(pdf: Canvas, top: float, row: _Row) -> float:
    """One fact: the label on the left, the value on the right, a hairline below."""
    first_baseline = top - ROW_PADDING - max(row.size, LABEL_SIZE) * 0.85
    pdf.setFillGray(GREY)
    pdf.setFont(REGULAR, LABEL_SIZE)
    for index, line in enumerate(row.label_lines):
        pdf.drawString(MARGIN + 2 * mm, first_baseline - index * LABEL_SIZE * 1.25, line)
    pdf.setFillGray(INK)
    pdf.setFont(BOLD, row.size)
    for index, line in enumerate(row.value_lines):
        pdf.drawString(VALUE_X, first_baseline - index * row.size * 1.2, line)
    bottom = top - row.height
    pdf.setStrokeGray(RULE)
    pdf.setLineWidth(0.4)
    pdf.line(MARGIN, bottom, PAGE_WIDTH - MARGIN, bottom)
    return bottom


def _verification(pdf: Canvas, top: float, visa: EVisaDocument) -> None:
    """The QR code on the left; on its right the key id, how to verify, and the code in
    characters for a reader without a camera."""
    pdf.drawImage(ImageReader(qr_image(visa.verification_code)), MARGIN, top - QR_SIZE, QR_SIZE, QR_SIZE)
    x = MARGIN + QR_SIZE + 5 * mm
    width = PAGE_WIDTH - MARGIN - x
    column = _Column(pdf, x, width)
    y = column.labelled(top - 2 * mm, KEY_ID_LABEL, [visa.key_id], MONO, VALUE_SIZE)
    y = column.labelled(y - 1.5 * mm, HOW_TO_VERIFY_LABEL, _how_to_verify(), REGULAR, 8.5)
    room = y - 1.5 * mm - LABEL_SIZE - 1 * mm - (top - QR_SIZE)
    size = CODE_SIZE
    # The longest names make a code of about 1,000 characters: smaller type keeps it beside the QR.
    code = visa.verification_code
    while size > SMALLEST_CODE_SIZE and len(wrap(code, MONO, size, width)) * size * 1.25 > room:
        size -= 0.5
    column.labelled(y - 1.5 * mm, CODE_LABEL, [code], MONO, size)


@dataclass(frozen=True)
class _Column:
    pdf: Canvas
    x: float
    width: float

    def labelled(self, top: float, label: str, paragraphs: list[str], font: str, size: float) -> float:
        """A small grey label, then the paragraphs wrapped to the column; returns the bottom."""
        self.pdf.setFillGray(GREY)
        self.pdf.setFont(REGULAR, LABEL_SIZE)
        y = top - LABEL_SIZE
        self.pdf.drawString(self.x, y, label)
        y -= 1 * mm
        self.pdf.setFillGray(INK)
        self.pdf.setFont(font, size)
        for paragraph in paragraphs:
            for line in wrap(paragraph, font, size, self.width):
                y -= size * 1.25
                self.pdf.drawString(self.x, y, line)
            y -= size * 0.4
        return y


def _footer(pdf: Canvas) -> None:
    pdf.setFillGray(GREY)
    pdf.setFont(REGULAR, FOOTER_SIZE)
    for index, line in enumerate(FOOTER):
        pdf.drawCentredString(PAGE_WIDTH / 2, FOOTER_TOP - (index + 1) * FOOTER_LEADING + 1 * mm, line)


def wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """`text` in lines no wider than `width`: broken at spaces, and inside a word (a long
    name, the verification code) only where the word alone is wider than a line."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if pdfmetrics.stringWidth(candidate, font, size) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        pieces = list(_pieces(word, font, size, width))
        lines.extend(pieces[:-1])
        line = pieces[-1]
    if line:
        lines.append(line)
    return lines or [""]


def _pieces(word: str, font: str, size: float, width: float) -> Iterator[str]:
    piece = ""
    for letter in word:
        if piece and pdfmetrics.stringWidth(piece + letter, font, size) > width:
            yield piece
            piece = ""
        piece += letter
    yield piece


def qr_image(code: str) -> Image.Image:
    """The code in black and white (grey scale: a third of the bytes of colour), quiet zone
    included, whole pixels per module so that it stays sharp when printed."""
    buffer = io.BytesIO()
    segno.make_qr(code, error="m").save(buffer, kind="png", scale=QR_PIXELS_PER_MODULE, border=4)
    return Image.open(buffer).convert("L")
