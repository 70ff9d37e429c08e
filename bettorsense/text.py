"""Bounding free text for storage and display without cutting a word in half."""

from __future__ import annotations

import re

ELLIPSIS = "…"


def shorten(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else cut at the last space before it, with an ellipsis.

    When the last space would drop more than two thirds of what fits (a long URL or token-like word),
    the word is cut instead, so that the text keeps saying something.
    """
    if len(text) <= limit:
        return text
    head = text[: max(0, limit - len(ELLIPSIS))]
    space = head.rfind(" ")
    if space >= limit // 3:
        head = head[:space]
    return head.rstrip(" ,;:-") + ELLIPSIS


def spelt_out(name: str) -> str:
    """A class name as words: ``TokenRateLimited`` -> ``Token rate limited``."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).split()
    if not words:
        return "unknown"
    return " ".join([words[0], *(word.lower() for word in words[1:])])
