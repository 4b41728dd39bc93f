"""The e-visa document as a traveller prints it and a border officer reads it, downloaded from
a real server: every name spelled as in the passport (Azerbaijani, Czech, German, Cyrillic),
every label in Azerbaijani and English, every fact an officer checks, a QR code that decodes
from the printed page to a code that verifies, one A4 page under 200 KB."""

from __future__ import annotations

import io
import shutil
import subprocess
from datetime import date, timedelta
from pathlib import Path
from typing import cast

import pypdf
import pytest
import zxingcpp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from PIL import Image
from pypdf.generic import DictionaryObject
from reportlab.pdfbase.ttfonts import TTFont
from sqlalchemy.orm import Session

import services.visa
from asan.visa.v1 import visa_pb2, visa_service_pb2
from services.runtime.db import utcnow
from services.visa import decisions, queries
from services.visa.document import FONTS, EVisaDocument, render_pdf
from services.visa.names import normalized_name
from services.visa.signing import SignedVisa, VisaSigner, verify_code
from tests.payment.builders import new_request_id
from tests.support.servers import RunningService
from tests.visa.builders import (
    applicant,
    application,
    baku_today,
    border_officer,
    create_request,
    in_database,
    officer,
    visa_stub,
)

# (surname, given names, nationality): as printed in each passport.
TRAVELLERS = [
    ("Məmmədova", "Aygün Şəhla", "USA"),
    ("Müller", "Jürgen", "DEU"),
    ("Dvořák", "Antonín", "CAN"),
    ("Иванова", "Мария Ёлкина", "ISR"),
]
PASSPORTS = ["C01X00T41", "C01X00T42", "C01X00T43", "C01X00T44"]

TITLE = "ELEKTRON VİZA / ELECTRONIC VISA"
COUNTRY = "AZƏRBAYCAN RESPUBLİKASI / REPUBLIC OF AZERBAIJAN"
LABELS = [
    "Soyadı / Surname",
    "Adı / Given names",
    "Latın hərfləri ilə / In Latin letters",
    "Doğum tarixi / Date of birth",
    "Cinsi / Sex",
    "Vətəndaşlığı / Nationality",
    "Pasport nömrəsi / Passport number",
    "Pasportun bitmə tarixi / Passport expiry date",
    "Viza nömrəsi / Visa number",
    "Müraciət nömrəsi / Application number",
    "Vizanın növü / Visa type",
    "Girişlərin sayı / Number of entries",
    "Etibarlılıq başlanğıcı / Valid from",
    "Etibarlılıq sonu / Valid until",
    "Qalma müddəti / Duration of stay",
    "Səfərin məqsədi / Purpose of visit",
    "Verilmə tarixi / Date of issue",
    "Açarın identifikatoru / Key id",
    "Necə yoxlamalı / How to verify",
    "Yoxlama kodu / Verification code",
]
MAX_BYTES = 200 * 1024
QR_CODE = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)


def _submit(visa: RunningService, number: str) -> None:
    """What the worker does on PaymentSucceeded, run here directly."""
    signer = VisaSigner.from_env()

    def submit(session: Session) -> None:
        row = queries.application_by_number(session, number, for_update=True)
        assert row is not None
        assert decisions.submit(session, row, utcnow(), sandbox=False, signer=signer)

    in_database(visa, submit)


async def _approved(visa: RunningService, app: visa_pb2.Application) -> visa_pb2.Application:
    """The application made, paid (as the worker records it) and every applicant approved."""
    stub = visa_stub(visa)
    created = await stub.CreateApplication(create_request(app))
    number = created.application.application_number
    _submit(visa, number)
    decided = created.application
    for person in app.applicants:
        decided = await stub.ApproveApplicant(
            visa_service_pb2.ApproveApplicantRequest(
                request_id=new_request_id(), application_number=number, passport_number=person.passport_number
            ),
            metadata=officer(),
        )
    return decided


async def _download(visa: RunningService, number: str, passport: str) -> bytes:
    document = await visa_stub(visa).GetEVisaDocument(
        visa_service_pb2.GetEVisaDocumentRequest(application_number=number, passport_number=passport)
    )
    assert document.content_type == "application/pdf"
    data: bytes = document.data
    return data


def _text(pdf: bytes) -> str:
    """The page's text with every run of white space made one space: a value wrapped over two
    lines reads as one."""
    [page] = pypdf.PdfReader(io.BytesIO(pdf)).pages
    return " ".join(page.extract_text().split())


def _page_image(pdf: bytes, tmp_path: Path, dpi: int) -> Image.Image:
    """The page as a printer or a scanner sees it, rendered by poppler."""
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        pytest.skip("pdftoppm is not installed: apt-get install poppler-utils (.ci/run does)")
    source = tmp_path / "evisa.pdf"
    source.write_bytes(pdf)
    subprocess.run(
        [pdftoppm, "-png", "-r", str(dpi), "-singlefile", str(source), str(tmp_path / "evisa")],
        check=True,
        timeout=60,
    )
    return Image.open(tmp_path / "evisa.png")


def _fonts(pdf: bytes) -> dict[str, bool]:
    """Each font the page uses, and whether its glyphs are embedded in the file."""
    [page] = pypdf.PdfReader(io.BytesIO(pdf)).pages
    resources = cast(DictionaryObject, page["/Resources"].get_object())
    found = {}
    for reference in cast(DictionaryObject, resources["/Font"].get_object()).values():
        font = cast(DictionaryObject, reference.get_object())
        descriptor = font.get("/FontDescriptor")
        found[str(font["/BaseFont"])] = descriptor is not None and "/FontFile2" in descriptor.get_object()
    return found


# --- Every letter prints ----------------------------------------------------------------------


async def test_every_name_prints_as_in_the_passport_and_in_latin_letters(visa: RunningService) -> None:
    people = [
        applicant(passport, surname=surname, given_names=given, nationality=country)
        for passport, (surname, given, country) in zip(PASSPORTS, TRAVELLERS, strict=True)
    ]
    decided = await _approved(visa, application(*people))
    for passport, (surname, given, _country) in zip(PASSPORTS, TRAVELLERS, strict=True):
        pdf = await _download(visa, decided.application_number, passport)
        text = _text(pdf)
        assert surname in text and given in text, text
        assert normalized_name(surname, given) in text
        assert len(pdf) < MAX_BYTES
        fonts = _fonts(pdf)
        assert fonts and all(fonts.values()), f"fonts not embedded: {fonts}"
    assert "MAMMADOVA AYGUN SHAHLA" in _text(await _download(visa, decided.application_number, PASSPORTS[0]))


def test_the_embedded_fonts_have_every_letter_of_azerbaijani_european_latin_and_cyrillic() -> None:
    azerbaijani = "AaBbCcÇçDdEeƏəFfGgĞğHhXxIıİiJjKkQqLlMmNnOoÖöPpRrSsŞşTtUuÜüVvYyZz"
    latin_extended = "".join(chr(code) for code in range(0x00C0, 0x0180) if chr(code).isalpha())
    cyrillic = "".join(chr(code) for code in range(0x0400, 0x0460))
    for name in ("DejaVuSans", "DejaVuSans-Bold"):
        face = TTFont(name, FONTS / f"{name}.ttf").face
        missing = [
            letter
            for letter in azerbaijani + latin_extended + cyrillic
            if ord(letter) not in face.charToGlyph
        ]
        assert not missing, f"{name} has no glyph for {''.join(missing)}"
    # The image copies the service's folder: fonts kept in it are in the image, with their licence.
    assert FONTS.is_relative_to(Path(services.visa.__file__).parent)
    assert "Bitstream Vera" in (FONTS / "LICENSE").read_text()


# --- Both languages, every fact ----------------------------------------------------------------


async def test_every_label_is_in_azerbaijani_and_english_beside_every_fact(visa: RunningService) -> None:
    expiry = baku_today() + timedelta(days=4 * 365)
    person = applicant(
        "C01X00T47",
        surname="Müller",
        given_names="Jürgen",
        date_of_birth=date(1984, 2, 29),
        sex=visa_pb2.SEX_MALE,
        passport_expiry=expiry,
    )
    decided = await _approved(visa, application(person, purpose=visa_pb2.PURPOSE_BUSINESS))
    evisa = decided.applicants[0].evisa
    text = _text(await _download(visa, decided.application_number, "C01X00T47"))
    for label in [TITLE, COUNTRY, *LABELS]:
        assert label in text, f"{label!r} is missing"
    valid_from, valid_until = (
        f"{d.year:04d}-{d.month:02d}-{d.day:02d}" for d in (evisa.valid_from, evisa.valid_until)
    )
    facts = [
        evisa.visa_number,
        decided.application_number,
        "1984-02-29",
        "Kişi / Male (M)",
        "DEU – Germany",
        "C01X00T47",
        expiry.isoformat(),
        "Elektron viza / Electronic visa (e-visa)",
        "Birdəfəlik / Single entry",
        valid_from,
        valid_until,
        "30 gün / 30 days",
        "İşgüzar səfər / Business",
        baku_today().isoformat(),
        "GET /v1/verificationKey",
    ]
    for fact in facts:
        assert fact in text, f"{fact!r} is missing"


# --- The QR code, from paper -------------------------------------------------------------------


async def test_the_printed_qr_code_decodes_to_a_code_that_verifies_with_the_published_key(
    visa: RunningService, tmp_path: Path
) -> None:
    person = applicant("C01X00T47", surname="Dvořák", given_names="Antonín", nationality="CAN")
    decided = await _approved(visa, application(person))
    pdf = await _download(visa, decided.application_number, "C01X00T47")
    # 150 dpi: a fax-quality scan of the printed page; the QR code is found on the whole page.
    [qr] = zxingcpp.read_barcodes(_page_image(pdf, tmp_path, dpi=150), formats=QR_CODE)
    stub = visa_stub(visa)
    key = await stub.GetVerificationKey(visa_service_pb2.GetVerificationKeyRequest())
    public_key = serialization.load_pem_public_key(key.public_key_pem.encode())
    assert isinstance(public_key, Ed25519PublicKey)
    signed = verify_code(public_key, qr.text)  # offline, as a border post without a network would
    assert (signed.key_id, signed.name) == (key.key_id, "DVORAK ANTONIN")
    assert key.key_id in _text(pdf)
    checked = await stub.VerifyVisa(
        visa_service_pb2.VerifyVisaRequest(
            request_id=new_request_id(), verification_code=qr.text, passport_number="C01X00T47"
        ),
        metadata=border_officer(),
    )
    assert checked.result == visa_pb2.VERIFICATION_RESULT_VALID


def _document(surname: str, given_names: str) -> EVisaDocument:
    signer = VisaSigner.from_env()
    name = normalized_name(surname, given_names)
    today = baku_today()
    until = today + timedelta(days=89)
    code = signer.sign(
        SignedVisa(
            signer.key_id,
            "AZ-EV-26-00000001",
            "C01X00T47",
            "DEU",
            name,
            date(1990, 4, 17),
            today,
            until,
            30,
            1,
        )
    )
    return EVisaDocument(
        visa_number="AZ-EV-26-00000001",
        application_number="AZ-AP-26-00000001",
        surname=surname,
        given_names=given_names,
        latin_name=name,
        date_of_birth=date(1990, 4, 17),
        sex="FEMALE",
        nationality="DEU",
        nationality_name="Germany",
        passport_number="C01X00T47",
        passport_expiry=today + timedelta(days=3 * 365),
        entries=1,
        valid_from=today,
        valid_until=until,
        stay_days=30,
        purpose="TOURISM",
        issue_date=today,
        verification_code=code,
        key_id=signer.key_id,
    )


def test_the_longest_names_the_rules_accept_still_fit_one_page_with_a_readable_qr_code(
    tmp_path: Path,
) -> None:
    # 100 letters each, the most a name may have, of the widest Cyrillic letters.
    document = _document("Ш" * 100, "Щ" * 100)
    pdf = render_pdf(document)
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1 and len(pdf) < MAX_BYTES
    page = reader.pages[0]
    assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (595, 842)  # A4
    heights = _baselines(page)
    # The facts end above the verification block, which ends above the footer.
    assert heights["Verilmə tarixi / Date of issue"] > heights["YOXLAMA / VERIFICATION"]
    assert heights["Yoxlama kodu / Verification code"] > heights[FOOTER_START]
    [qr] = zxingcpp.read_barcodes(_page_image(pdf, tmp_path, dpi=200), formats=QR_CODE)
    assert qr.text == document.verification_code


FOOTER_START = "Sərhəddə pasportla birlikdə təqdim edin."


def _baselines(page: pypdf.PageObject) -> dict[str, float]:
    """The height on the page of each line of text, by the line's beginning."""
    found: dict[str, float] = {}

    def visit(text: str, cm: list[float], tm: list[float], font: object, size: float) -> None:
        for line in text.splitlines():
            if line.strip():
                found.setdefault(line.strip(), tm[5] * cm[3] + cm[5])

    page.extract_text(visitor_text=visit)
    return {
        start: height
        for line, height in found.items()
        for start in (
            "Verilmə tarixi / Date of issue",
            "YOXLAMA / VERIFICATION",
            "Yoxlama kodu / Verification code",
            FOOTER_START,
        )
        if line.startswith(start)
    }
