"""The e-visa document: one A4 page with the visa's facts and its verification code as a QR
code (and printed below it, for a manual check)."""

from __future__ import annotations

import io
import textwrap

import segno
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from services.visa.domain import EVISA_ENTRIES

TITLE = "REPUBLIC OF AZERBAIJAN - ELECTRONIC VISA (E-VISA)"


def qr_png(code: str) -> bytes:
    buffer = io.BytesIO()
    segno.make_qr(code, error="m").save(buffer, kind="png", scale=4, border=4)
    return buffer.getvalue()


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
