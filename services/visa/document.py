"""The e-visa document: one A4 page with the visa's facts and its verification code as a QR
code (and printed below it, for a manual check)."""

from __future__ import annotations

import io
import textwrap

import segno
from google.type import date_pb2
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from asan.visa.v1 import visa_pb2
from services.visa.domain import EVISA_ENTRIES

TITLE = "REPUBLIC OF AZERBAIJAN - ELECTRONIC VISA (E-VISA)"


def qr_png(code: str) -> bytes:
    buffer = io.BytesIO()
    segno.make_qr(code, error="m").save(buffer, kind="png", scale=4, border=4)
    return buffer.getvalue()


def evisa_document(visa: visa_pb2.EVisa) -> bytes:
    """The e-visa as the applicant downloads and prints it."""
    return evisa_pdf(_facts(visa), visa.verification_code)


def _facts(visa: visa_pb2.EVisa) -> list[tuple[str, str]]:
    return [
        ("Visa number", visa.visa_number),
        ("Application number", visa.application_number),
        ("Surname", visa.surname),
        ("Given names", visa.given_names),
        ("Date of birth", _iso(visa.date_of_birth)),
        ("Nationality", visa.nationality),
        ("Passport number", visa.passport_number),
        ("Valid from", _iso(visa.valid_from)),
        ("Valid until", _iso(visa.valid_until)),
        ("Duration of stay", f"{visa.stay_days} days"),
    ]


def _iso(value: date_pb2.Date) -> str:
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def evisa_pdf(facts: list[tuple[str, str]], verification_code: str) -> bytes:
    """`facts` are (label, value) lines in order, e.g. ("Visa number", "AZ-EV-...")."""
    buffer = io.BytesIO()
    pdf = Canvas(buffer, pagesize=A4, invariant=True)
    pdf.setTitle("e-visa")
    _width, height = A4
    pdf.setFont("Helvetica-Bold", 14)
    pdf.drawString(20 * mm, height - 25 * mm, TITLE)
    pdf.setFont("Helvetica", 11)
    y = height - 40 * mm
    for label, value in facts:
        pdf.drawString(20 * mm, y, f"{label}:")
        pdf.drawString(70 * mm, y, value)
        y -= 7 * mm
    pdf.drawString(20 * mm, y, "Entries:")
    pdf.drawString(70 * mm, y, "single" if EVISA_ENTRIES == 1 else str(EVISA_ENTRIES))
    y -= 10 * mm
    size = 70 * mm
    pdf.drawImage(ImageReader(io.BytesIO(qr_png(verification_code))), 20 * mm, y - size, size, size)
    y -= size + 8 * mm
    pdf.setFont("Courier", 7)
    pdf.drawString(20 * mm, y, "Verification code:")
    for line in textwrap.wrap(verification_code, 90, break_on_hyphens=False):
        y -= 3.5 * mm
        pdf.drawString(20 * mm, y, line)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
