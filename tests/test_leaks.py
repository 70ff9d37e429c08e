"""No secret (client secret, access token) in a log record, an exception text, a repr or a 500 page."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import RequestFactory
from django.views.debug import technical_500_response

from bettorsense import services, tokens
from bettorsense.conf import get_config
from bettorsense.exceptions import BettorSenseError
from bettorsense.sandbox import Fault
from bettorsense.tokens.manager import TokenManager
from tests.support.sandbox import CLIENT_SECRET

pytestmark = pytest.mark.django_db(transaction=True)

JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))
        if record.exc_info:
            self.texts.append(logging.Formatter().formatException(record.exc_info))


@pytest.fixture
def everything_logged() -> Iterator[Collect]:
    handler = Collect()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in ("bettorsense", "urllib3", "requests"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old_level)


TOKEN_FAULTS = [
    Fault(target="token", kind="status", status=500),
    Fault(target="token", kind="status", status=503),
    Fault(target="token", kind="retry_after", status=429, retry_after=1),
    Fault(target="token", kind="non_json"),
    Fault(target="token", kind="missing_field"),
    Fault(target="token", kind="bad_type"),
    Fault(target="token", kind="slow", delay=1.0),
]
API_FAULTS = [
    Fault(target="profile", kind="status", status=503),
    Fault(target="profile", kind="status", status=500),
    Fault(target="profile", kind="retry_after", status=429, retry_after=30),
    Fault(target="profile", kind="non_json"),
    Fault(target="profile", kind="bad_type"),
    Fault(target="profile", kind="missing_field"),
]


def exercise(configure: Any, sandbox: Any, issued: set[str]) -> list[str]:
    """Drive every failure path; return every exception's str, repr and 500 page."""
    texts: list[str] = []
    request = RequestFactory().get("/players/x/risk-profile/")

    def attempt(call: Any) -> None:
        # The 500 page shows this frame's locals: the issued tokens are collected outside it.
        tokens.get_token_manager().shared.clear_backoff()  # each step starts without the last one's backoff
        try:
            call()
        except BettorSenseError as err:
            texts.extend([str(err), repr(err), err.hint or "", err.detail or ""])
            texts.append(technical_500_response(request, *sys.exc_info()).content.decode())
        collect()

    def collect() -> None:
        current = tokens.get_token_manager().peek()
        if current is not None:
            issued.add(current.value)

    for fault in TOKEN_FAULTS:
        configure(READ_TIMEOUT=0.3, BACKOFF_BASE=0.01)
        sandbox.state.clear_faults()
        sandbox.state.add_fault(fault)
        attempt(tokens.get_access_token)
    for overrides in ({"CLIENT_SECRET": "wrong-" + CLIENT_SECRET}, {"AUDIENCE": "mts-insight-tech-unknown"}):
        sandbox.state.clear_faults()
        configure(**overrides)
        attempt(tokens.get_access_token)
    sandbox.state.clear_faults()
    configure(MAX_RETRIES=0, BREAKER_THRESHOLD=100)
    attempt(tokens.get_access_token)
    for fault in API_FAULTS:
        sandbox.state.clear_faults()
        sandbox.state.add_fault(fault)
        attempt(lambda: services.get_player_risk_profile("player_1", fresh=True))
    sandbox.state.clear_faults()
    sandbox.state.revoke_tokens()
    attempt(lambda: services.get_player_risk_profile("player_2", fresh=True))
    attempt(tokens.get_access_token)
    configure(AUDIENCE="mts-insight-tech", MAX_RETRIES=0)  # refused twice: AuthenticationFailed
    attempt(lambda: services.get_player_risk_profile("player_3", fresh=True))
    attempt(tokens.get_access_token)
    manager = TokenManager(get_config())
    texts.extend([repr(manager.get_token()), repr(get_config()), repr(manager.peek())])
    return texts


def test_no_secret_in_logs_exceptions_reprs_or_500_pages(configure, sandbox, everything_logged):
    issued: set[str] = set()
    texts = exercise(configure, sandbox, issued)
    assert len(issued) >= 2  # the search below looked for real tokens
    corpus = "\n".join(texts + everything_logged.texts)
    assert "Traceback" in corpus or "Vendor said" in corpus  # the failure paths really ran
    assert CLIENT_SECRET not in corpus
    for token in issued:
        assert token not in corpus
        assert token.split(".")[2] not in corpus  # not even the signature
    assert JWT.findall(corpus) == []


def test_the_search_finds_a_planted_canary(configure, sandbox, everything_logged):
    token = tokens.get_access_token()
    logging.getLogger("bettorsense.canary").warning("planted %s and %s", CLIENT_SECRET, token)
    corpus = "\n".join(everything_logged.texts)
    assert CLIENT_SECRET in corpus and token in corpus and JWT.findall(corpus)
