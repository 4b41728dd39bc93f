"""Repeat detection: a new appeal's text against the same citizen's earlier appeals in the same
category, by a normalised text similarity (not an exact match). What is found is shown to the
officer, who decides; the service never refuses a repeat by itself.

Texts are normalised (Unicode NFKC, case folded, punctuation and runs of spaces made one space)
and compared with the standard library's `difflib.SequenceMatcher` ratio (no similarity library
is installed in the suite's environment): 1.0 for the same words in the same order.

Pure: no I/O, no protobuf.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from difflib import SequenceMatcher

# Ratios at or above this are shown as similar: a reworded sentence or two in a page of the same
# complaint, not two complaints in the same category.
SIMILAR_FROM = 0.75
# The earlier appeals compared, newest first: enough for any real repeat, bounded for the CPU.
MAX_COMPARED = 50

_NOT_WORD = re.compile(r"[\W_]+")


def normalised(text: str) -> str:
    """'  Yol  bərbad vəziyyətdədir!!' -> 'yol bərbad vəziyyətdədir'."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _NOT_WORD.sub(" ", folded).strip()


def similarity(first: str, second: str) -> float:
    """The ratio of two normalised texts, 0.0 to 1.0; below SIMILAR_FROM, an upper bound of it
    (the cheap bounds decide that much)."""
    matcher = SequenceMatcher(None, first, second, autojunk=False)
    # The quick bounds first: most unrelated texts stop here.
    if matcher.real_quick_ratio() < SIMILAR_FROM or matcher.quick_ratio() < SIMILAR_FROM:
        return matcher.quick_ratio()
    return matcher.ratio()


def similar_appeals(text: str, earlier: Iterable[tuple[str, str]]) -> list[str]:
    """The numbers of the earlier appeals, given as (number, normalised text) newest first, whose
    text is similar to `text`, most similar first."""
    mine = normalised(text)
    scored = []
    for count, (number, other) in enumerate(earlier):
        if count >= MAX_COMPARED:
            break
        score = similarity(mine, other)
        if score >= SIMILAR_FROM:
            scored.append((score, number))
    return [number for _, number in sorted(scored, key=lambda item: (-item[0], item[1]))]
