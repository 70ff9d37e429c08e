"""The leak search: every log line and every HTTP answer the suite kept, against every secret it knows.

What is searched for, and why that is enough:

* **The client secret, the health bearer key, Django's SECRET_KEY** and the admin password of the
  run (fresh random values, so a hit cannot be a coincidence), each also URL-encoded, and the
  client secret also inside an HTTP Basic ``client_id:secret`` pair in base64.
* **Every token the fleet shared**, harvested from the shared cache during each scenario
  (:mod:`e2e.harvest`): the whole value, and its payload and signature segments alone, so a
  token cut in two or with its header stripped is found too.
* **Anything shaped like a JWT** (``eyJ...``.``...``.``...``): every token the sandbox issues has that
  shape, so this also covers the tokens no harvest saw (a process's own token while Redis was
  down). And any ``Bearer <credential>``.

The search is shown to work on the same corpus: a canary client is registered in the sandbox, the
suite obtains a real token for it from the token endpoint, and plants that token and the canary's
secret where the processes write (the sandbox logs the ids of registered clients; the control API
echoes them in its answers). The search must find the canaries there, and nothing else anywhere.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
BEARER = re.compile(r"Bearer\s+([A-Za-z0-9._~+/=-]{12,})")


@dataclass(frozen=True)
class Needle:
    label: str
    value: str
    canary: bool = False


@dataclass(frozen=True)
class Hit:
    path: Path
    label: str
    canary: bool
    excerpt: str  # redacted: the label, never the value


def secret_needles(label: str, value: str, *, client_id: str | None = None, canary: bool = False) -> list[Needle]:
    needles = [Needle(label, value, canary)]
    if quote(value, safe="") != value:
        needles.append(Needle(f"{label} (URL-encoded)", quote(value, safe=""), canary))
    if client_id is not None:
        basic = base64.b64encode(f"{client_id}:{value}".encode()).decode()
        needles.append(Needle(f"{label} (HTTP Basic)", basic, canary))
    return needles


def token_needles(label: str, token: str, *, canary: bool = False) -> list[Needle]:
    needles = [Needle(label, token, canary)]
    parts = token.split(".")
    if len(parts) == 3:  # the header is the same for every token: not a secret on its own
        needles += [Needle(f"{label} payload", parts[1], canary), Needle(f"{label} signature", parts[2], canary)]
    return needles


def corpus(dirs: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for directory in dirs:
        if directory.is_dir():
            files += sorted(p for p in directory.rglob("*") if p.is_file())
    return files


def scan(files: Iterable[Path], needles: list[Needle], canary_tokens: set[str]) -> tuple[list[Hit], int]:
    """Every occurrence of a needle, of a JWT-shaped string or of a bearer credential; and the bytes read."""
    by_value = {n.value: n for n in needles if n.value}
    pattern = re.compile("|".join(re.escape(v) for v in sorted(by_value, key=len, reverse=True))) if by_value else None
    hits: list[Hit] = []
    scanned = 0
    for path in files:
        text = path.read_text(errors="replace")
        scanned += len(text)
        if pattern is not None:
            for match in pattern.finditer(text):
                needle = by_value[match.group(0)]
                hits.append(Hit(path, needle.label, needle.canary, _excerpt(text, match, needle.label)))
        for match in JWT.finditer(text):
            canary = match.group(0) in canary_tokens
            hits.append(Hit(path, "JWT-shaped string", canary, _excerpt(text, match, "JWT")))
        for match in BEARER.finditer(text):
            canary = any(match.group(1) in token or token in match.group(1) for token in canary_tokens)
            hits.append(Hit(path, "Bearer credential", canary, _excerpt(text, match, "bearer")))
    return hits, scanned


def _excerpt(text: str, match: re.Match[str], label: str) -> str:
    before = text[max(0, match.start() - 40) : match.start()].replace("\n", " ")
    after = text[match.end() : match.end() + 20].replace("\n", " ")
    return f"…{before}[{label}]{after}…"
