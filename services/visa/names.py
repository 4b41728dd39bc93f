"""Names as checks compare them: transliterated to Latin capitals, so that Əliyev, Aliyev and
ƏLİYEV are one name, and so are Şəhla and Shahla.

The Azerbaijani letters follow the romanisation of Azerbaijani passports (ə→A, ş→SH, ç→CH,
ğ→GH, ı→I, ö→O, ü→U), from an explicit table: `unidecode` alone turns ə into "@" and ş into
"S". Every other script (Cyrillic, accented Latin) goes through `unidecode`.
"""

from __future__ import annotations

import re
import unicodedata

from unidecode import unidecode

# Lower- and upper-case forms; İ (dotted capital I) is Azerbaijani and Turkish.
AZERBAIJANI_LETTERS = {
    "ə": "A",
    "Ə": "A",
    "ş": "SH",
    "Ş": "SH",
    "ç": "CH",
    "Ç": "CH",
    "ğ": "GH",
    "Ğ": "GH",
    "ı": "I",
    "I": "I",
    "İ": "I",
    "ö": "O",
    "Ö": "O",
    "ü": "U",
    "Ü": "U",
}
_TABLE = str.maketrans(AZERBAIJANI_LETTERS)
_NOT_LETTERS = re.compile(r"[^A-Z ]+")
_SPACES = re.compile(r"\s+")


def latin_capitals(text: str) -> str:
    """'Şəhla-Nur  Əliyeva' -> 'SHAHLA NUR ALIYEVA': Latin capitals and single spaces; hyphens
    and apostrophes become spaces or vanish, as in the machine-readable zone."""
    composed = unicodedata.normalize("NFC", text).translate(_TABLE)
    latin = unidecode(composed).upper().replace("-", " ")
    return _SPACES.sub(" ", _NOT_LETTERS.sub("", latin)).strip()


def normalized_name(surname: str, given_names: str) -> str:
    """The whole name as compared: 'SURNAME GIVEN NAMES'."""
    return f"{latin_capitals(surname)} {latin_capitals(given_names)}".strip()
