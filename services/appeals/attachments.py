"""What a citizen may attach to an appeal: JPEG and PNG images and PDFs, their type read from
their content (the leading signature and the trailer that ends every whole file of the type),
never from their name, which must agree with it: a `.pdf` that is a PNG, or an executable named
`photo.jpg`, is refused. At most 5 files, each at most 1 MiB, together at most 2 MiB (a gRPC
message is at most 4 MiB; the gateway's body limit, 1 MiB by default, is smaller still).

Pure: no I/O, no protobuf.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.runtime.validation import Violations

MAX_ATTACHMENTS = 5
MAX_BYTES = 1024 * 1024
MAX_TOTAL_BYTES = 2 * 1024 * 1024
MAX_FILE_NAME_LENGTH = 200

JPEG, PNG, PDF = "image/jpeg", "image/png", "application/pdf"
EXTENSIONS: Mapping[str, str] = {".jpg": JPEG, ".jpeg": JPEG, ".png": PNG, ".pdf": PDF}
# (leading bytes, what a whole file of the type ends with); a PDF may have a few bytes
# (a newline, an incremental update's padding) after its last %%EOF.
_SIGNATURES: Mapping[str, tuple[bytes, bytes]] = {
    PNG: (b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"),
    JPEG: (b"\xff\xd8\xff", b"\xff\xd9"),
    PDF: (b"%PDF-", b"%%EOF"),
}
_PDF_TRAILER_SLACK = 32


@dataclass(frozen=True)
class NewAttachment:
    file_name: str
    content: bytes


@dataclass(frozen=True)
class CheckedAttachment:
    file_name: str
    content_type: str
    content: bytes


def content_type_of(content: bytes) -> str | None:
    """The type a file's bytes are, by its signature and its trailer; None for anything else
    (another type, or a file cut short)."""
    for content_type, (leading, trailer) in _SIGNATURES.items():
        if not content.startswith(leading):
            continue
        if content_type == PDF:
            return PDF if trailer in content[-(len(trailer) + _PDF_TRAILER_SLACK) :] else None
        return content_type if content.endswith(trailer) else None
    return None


def type_by_name(file_name: str) -> str | None:
    dot = file_name.rfind(".")
    return EXTENSIONS.get(file_name[dot:].lower()) if dot > 0 else None


def check_attachments(
    attachments: Sequence[NewAttachment], violations: Violations, path: str
) -> list[CheckedAttachment]:
    """The attachments with their types, every bad one reported at its index."""
    if not violations.check(
        len(attachments) <= MAX_ATTACHMENTS, path, f"At most {MAX_ATTACHMENTS} files.", "TOO_MANY"
    ):
        return []
    violations.check(
        sum(len(a.content) for a in attachments) <= MAX_TOTAL_BYTES,
        path,
        f"Together at most {MAX_TOTAL_BYTES // 1024 // 1024} MiB.",
        "TOO_LARGE",
    )
    checked = []
    for index, attachment in enumerate(attachments):
        content_type = _checked(attachment, violations, f"{path}[{index}]")
        if content_type is not None:
            checked.append(CheckedAttachment(attachment.file_name, content_type, attachment.content))
    return checked


def _checked(attachment: NewAttachment, violations: Violations, path: str) -> str | None:
    claimed = _type_by_name(attachment.file_name, violations, f"{path}.file_name")
    actual = _type_by_content(attachment.content, violations, f"{path}.content")
    if claimed is None or actual is None:
        return None
    if actual != claimed:
        violations.add(
            f"{path}.file_name",
            f"The name says {claimed}, the content is {actual}: name the file for what it is.",
            "TYPE_MISMATCH",
        )
        return None
    return actual


def _type_by_name(name: str, violations: Violations, path: str) -> str | None:
    if not 0 < len(name) <= MAX_FILE_NAME_LENGTH or name.strip() != name or "/" in name or "\\" in name:
        violations.add(
            path,
            f"Required: the file's name without folders, 1 to {MAX_FILE_NAME_LENGTH} characters.",
            "FORMAT",
        )
        return None
    claimed = type_by_name(name)
    if claimed is None:
        violations.add(path, "Only .jpg, .jpeg, .png and .pdf files are taken.", "UNSUPPORTED_TYPE")
    return claimed


def _type_by_content(content: bytes, violations: Violations, path: str) -> str | None:
    if not content:
        violations.add(path, "Required: the file's content.", "REQUIRED")
        return None
    if len(content) > MAX_BYTES:
        violations.add(path, f"At most {MAX_BYTES // 1024 // 1024} MiB.", "TOO_LARGE")
        return None
    actual = content_type_of(content)
    if actual is None:
        violations.add(
            path, "Not a whole JPEG, PNG or PDF file, whatever its name says.", "UNSUPPORTED_CONTENT"
        )
    return actual
