"""Bad input at the demo's edge: account ids that are huge, unicode, or path tricks, sent byte for byte.

Each case is a raw request line sent over a socket (no client library normalises it). For each
one the suite also computes what should reach the sandbox, the way gunicorn and Django decode a
path: refuse raw bytes that are not printable ASCII (gunicorn answers 400), split off the query or
fragment at the first ``?`` or ``#``, percent-decode to bytes, re-percent-encode bytes that
are not UTF-8 (Django's ``repercent_broken_unicode``), match the demo's route, then apply the
service layer's validation (1 to 64 characters, no control characters). A case that passes all of
that must reach the sandbox exactly once, as a profile request for exactly that account id; any
other case must not reach it at all.
"""

from __future__ import annotations

import random
import re
import socket
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

from django.utils.encoding import repercent_broken_unicode

ROUTE = re.compile(r"^players/(?P<account_id>.+)/risk-profile/$", re.DOTALL)
LOAD_ACCOUNT = re.compile(r"^player_\d+$")  # what the load generator asks for; no case may decode to it

TRICKS = [
    "..",
    ".",
    "...",
    "%2e%2e",
    "%2E",
    "%2e",
    "..%2f..%2fRiskProfiles",
    "a/../b",
    "a/./b",
    "../../admin",
    "%2F",
    "/",
    "//",
    "a//b",
    "..\\..",
    "%5c",
    "a%5c..%5cb",
    ";",
    "a;b=c",
    "@",
    "~",
    "%",
    "%zz",
    "%2",
    "%%32%65",
    "%252e%252e",
    "%c0%ae%c0%ae",
    "%u002e",
    "%3F",
    "%23",
    "&",
    "=",
    "+",
    "%20",
    " x",
    "%09",
    "%0d%0a",
    "%0a",
    ".%00.",
    "%00",
    "x/risk-profile",
    "a/risk-profile/b",
    "player_1/../player_2",
    "player_1%2F..%2Fplayer_2",
    "player_1%2F..%2F..%2F..%2FRiskProfiles%2Fbookmakers%2F123%2Fsub-bookmakers%2F456",
    "player_01",
    "PLAYER_1",
    "player_1%20",
    "player_-1",
    "player_1.0",
    "player_%31",
    "not_created_x",
    "inactive_y",
    "%ff",
    "%fe%ff",
    "%ed%a0%80",
    "%c3%28",
    "%e2%80%ae",
    "%ef%bb%bf",
    "%e2%80%a8",
    "%c2%85",
    "%ef%bf%bf",
    "%f0%9f%92%a9",
    "caf%c3%a9",
    "cafe%cc%81",
    "%e2%80%8d",
    "%d8%a7%d9%84%d8%b9%d8%b1%d8%a8%d9%8a%d8%a9",
    "%e4%b8%ad%e6%96%87",
    "%2Fci%2Fapi%2Frg%2Fv1",
    "?page=2",
    "a?b",
    "#frag",
    "a#b",
    "%3Fpage%3D2",
    "x" * 64,
    "x" * 65,
    "%41" * 64,
    "%41" * 65,
    "%c3%a9" * 64,
    "%c3%a9" * 65,
    "\U0001d518".encode().hex(),
]


@dataclass(frozen=True)
class Case:
    method: str
    target: bytes  # the request target, byte for byte
    note: str

    def expected_account(self) -> str | None:
        """The account id the sandbox must receive, or None when the request must not reach it."""
        if self.method != "GET":
            return None
        if any(byte <= 0x20 or byte >= 0x7F for byte in self.target):
            return None  # gunicorn refuses a request line with raw spaces, controls or non-ASCII bytes
        path = re.split(rb"[?#]", self.target, maxsplit=1)[0]  # the query or the fragment starts there
        try:
            text = repercent_broken_unicode(unquote_to_bytes(path)).decode()
        except UnicodeDecodeError:
            return None
        if not text.startswith("/"):
            return None
        match = ROUTE.match(text[1:])
        if match is None:
            return None
        account = match.group("account_id")
        if not 1 <= len(account) <= 64:
            return None
        if any(unicodedata.category(char) in ("Cc", "Cs") for char in account):
            return None
        return account


def _target(segment: str | bytes) -> bytes:
    raw = segment.encode() if isinstance(segment, str) else segment
    return b"/players/" + raw + b"/risk-profile/?fresh=1"


def cases(seed: int = 7, random_count: int = 150) -> list[Case]:
    found = [Case("GET", _target(trick), f"trick {trick[:40]!r}") for trick in TRICKS]
    found += [
        Case("GET", _target("\U0001d518\U0001d52b".encode()), "raw UTF-8 bytes in the request line"),
        Case("GET", _target(b"caf\xe9"), "raw latin-1 byte in the request line"),
        Case("GET", _target(b"a b"), "raw space in the request line"),
        Case("GET", _target(b"a\tb"), "raw tab in the request line"),
        Case("GET", _target(b"a\r\nX-Injected: 1\r\n"), "raw CRLF in the request line"),
        Case("GET", _target("y" * 3000), "3000 characters"),
        Case("GET", _target("z" * 10_000), "10000 characters (longer than gunicorn's request line)"),
        Case("GET", _target(quote("\u00e9" * 2000, safe="")), "2000 encoded é"),
        Case("GET", b"/players//risk-profile/?fresh=1", "empty account id"),
        Case("GET", b"/players/risk-profile/?fresh=1", "no account segment"),
        Case("GET", b"/players/a/risk-profile", "no trailing slash"),
        Case("GET", b"/players/a/risk-profile/extra/?fresh=1", "extra segment"),
        Case("GET", b"/players/../bettorsense/health/", "dot segments out of the route"),
    ]
    for method in ("POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"):
        found.append(Case(method, _target("fuzz_method"), f"{method} on the route"))
    rng = random.Random(seed)  # test data, not crypto
    alphabet = (
        "abcXYZ019_-.~!$&'()*+,;=:@/%?# \\\"<>{}|^`[]"
        "\u00e9\u00fc\u00df\u0130\u0131\u202e\u200b\u200d\ufeff\u2028\u00a0\u0085\u0000\u0007\u007f"
        "\u4e2d\u0627\U0001f4a9\U0001d518\ufffd\uffff"
    )
    while len(found) < len(TRICKS) + 19 + random_count:
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 80)))
        safe = rng.choice(["", "/", "/%", ".", "~@:", "/?#"])
        found.append(Case("GET", _target(quote(text, safe=safe)), f"random {text[:24]!r} safe={safe!r}"))
    return [case for case in found if not LOAD_ACCOUNT.match(case.expected_account() or "")]


@dataclass(frozen=True)
class Answer:
    status: int  # 0: the connection closed without an answer
    content_type: str
    body: bytes
    raw_head: bytes

    def header(self, name: str) -> str | None:
        for line in self.raw_head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip().decode(errors="replace")
        return None


def send(port: int, case: Case, timeout: float = 30.0, *, session_id: str | None = None) -> Answer:
    """One raw request; ``session_id`` sends a staff session's cookie (the demo honours ``fresh`` only for staff)."""
    cookie = b"Cookie: sessionid=" + session_id.encode() + b"\r\n" if session_id else b""
    request = (
        case.method.encode()
        + b" "
        + case.target
        + b" HTTP/1.1\r\nHost: 127.0.0.1:"
        + str(port).encode()
        + b"\r\n"
        + cookie
        + b"Connection: close\r\nContent-Length: 0\r\n\r\n"
    )
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    answer = Answer(int(match.group(1)) if match else 0, "", body, head)
    return Answer(answer.status, answer.header("content-type") or "", body, head)
