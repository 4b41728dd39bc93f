"""Attachments: images and PDFs, their type read from their content and never from their name
(a lying name is refused), within size limits; read back by whoever may see the appeal, over
gRPC and through the gateway as the raw file."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from PIL import Image

from asan.appeals.v1 import appeals_pb2, appeals_service_pb2
from services.appeals.attachments import (
    JPEG,
    MAX_BYTES,
    PDF,
    PNG,
    NewAttachment,
    check_attachments,
    content_type_of,
)
from services.runtime.validation import Violations
from tests.appeals.builders import OTHER_CITIZEN_FIN, Stub, citizen, officer, pothole, rejected, submit
from tests.gateway.support import gateway_for, token_header
from tests.payment.builders import shared_auth
from tests.support.servers import RunningService


def image(format_: str, colour: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buffer, format=format_)
    return buffer.getvalue()


PHOTO, SCREENSHOT, SCAN = image("JPEG"), image("PNG", "blue"), image("PDF")
PROGRAM = b"\x7fELF\x02\x01\x01" + bytes(200)


def problems(*files: tuple[str, bytes]) -> dict[str, str]:
    violations = Violations()
    check_attachments(
        [NewAttachment(name, content) for name, content in files], violations, "appeal.attachments"
    )
    return {v.field: v.reason for v in violations.items}


def test_the_type_is_read_from_the_content() -> None:
    assert (content_type_of(PHOTO), content_type_of(SCREENSHOT), content_type_of(SCAN)) == (JPEG, PNG, PDF)
    assert content_type_of(PROGRAM) is None
    assert content_type_of(PHOTO[: len(PHOTO) // 2]) is None, "a file cut short is no image"
    assert content_type_of(b"%PDF-1.7\n" + bytes(100)) is None


def test_a_lying_file_name_is_refused() -> None:
    assert problems(("photo.jpg", PHOTO), ("scan.pdf", SCREENSHOT), ("photo.jpg", PROGRAM)) == {
        "appeal.attachments[1].file_name": "TYPE_MISMATCH",
        "appeal.attachments[2].content": "UNSUPPORTED_CONTENT",
    }


def test_only_images_and_pdfs_of_a_bounded_size_are_taken() -> None:
    assert problems(("setup.exe", PHOTO), ("../etc/passwd.png", SCREENSHOT), ("empty.pdf", b"")) == {
        "appeal.attachments[0].file_name": "UNSUPPORTED_TYPE",
        "appeal.attachments[1].file_name": "FORMAT",
        "appeal.attachments[2].content": "REQUIRED",
    }
    huge = b"%PDF-1.7\n" + bytes(MAX_BYTES) + b"%%EOF"
    assert problems(("huge.pdf", huge)) == {"appeal.attachments[0].content": "TOO_LARGE"}
    assert problems(*[("p.png", SCREENSHOT)] * 6) == {"appeal.attachments": "TOO_MANY"}
    near = b"%PDF-1.7\n" + bytes(MAX_BYTES - 20) + b"%%EOF"
    assert problems(("a.pdf", near), ("b.pdf", near), ("c.pdf", near)) == {"appeal.attachments": "TOO_LARGE"}


def with_files(*files: tuple[str, bytes]) -> appeals_pb2.Appeal:
    appeal = pothole()
    appeal.attachments.extend(
        appeals_pb2.Attachment(file_name=name, content=content) for name, content in files
    )
    return appeal


async def test_attachments_are_kept_and_read_back_by_whoever_sees_the_appeal(stub: Stub) -> None:
    appeal = await submit(stub, with_files(("çuxur.JPG", PHOTO), ("akt.pdf", SCAN)))
    assert [(a.file_name, a.content_type, a.size_bytes, a.content) for a in appeal.attachments] == [
        ("çuxur.JPG", JPEG, len(PHOTO), b""),
        ("akt.pdf", PDF, len(SCAN), b""),
    ]

    def read(index: int) -> appeals_service_pb2.GetAppealAttachmentRequest:
        return appeals_service_pb2.GetAppealAttachmentRequest(appeal_number=appeal.appeal_number, index=index)

    for caller in (citizen(), officer()):
        body = await stub.GetAppealAttachment(read(1), metadata=caller)
        assert (body.content_type, body.data) == (PDF, SCAN)
    hidden = await rejected(stub.GetAppealAttachment(read(0), metadata=citizen(OTHER_CITIZEN_FIN)))
    assert (hidden.code, hidden.reason) == (grpc.StatusCode.NOT_FOUND, "APPEAL_NOT_FOUND")
    missing = await rejected(stub.GetAppealAttachment(read(2), metadata=citizen()))
    assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "ATTACHMENT_NOT_FOUND")


async def test_an_appeal_with_a_lying_attachment_is_refused_whole(stub: Stub) -> None:
    refusal = await rejected(submit(stub, with_files(("photo.jpg", PHOTO), ("receipt.pdf", SCREENSHOT))))
    assert refusal.violations == {"appeal.attachments[1].file_name": "TYPE_MISMATCH"}
    listed = await stub.ListAppeals(appeals_service_pb2.ListAppealsRequest(), metadata=citizen())
    assert list(listed.appeals) == []


@pytest.fixture
async def http(appeals: RunningService, payment: RunningService) -> AsyncIterator[httpx.AsyncClient]:
    services = {"asan.appeals.v1": appeals, "asan.payment.v1": payment}
    async with gateway_for(services, shared_auth()) as gateway, gateway.client() as client:
        yield client


async def test_an_attachment_is_downloaded_through_the_gateway_as_the_file_itself(
    stub: Stub, http: httpx.AsyncClient
) -> None:
    number = (await submit(stub, with_files(("ekran.png", SCREENSHOT)))).appeal_number
    response = await http.get(
        f"/v1/appeals/{number}/attachments/0", headers=token_header("citizen", "5ZK3T9P")
    )
    assert (response.status_code, response.headers["content-type"], response.content) == (
        200,
        PNG,
        SCREENSHOT,
    )
