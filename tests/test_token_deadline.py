"""One deadline for the whole token request, status line and headers included, over real HTTP.

The renewal lock's TTL is that deadline plus a margin, so a request that cannot outlive its deadline
cannot outlive the lock either: two renewals never overlap. The review's case was an answer that
took 12 s against an 8 s lock; here the answer's head arrives a byte at a time, each byte within the
read timeout, which no per-read timeout ends.
"""

from __future__ import annotations

import threading
import time

import pytest

from bettorsense.conf import get_config
from bettorsense.exceptions import TokenTimeout
from bettorsense.sandbox import Fault
from bettorsense.tokens.endpoint import TokenEndpoint, request_deadline
from bettorsense.tokens.manager import TokenManager
from bettorsense.tokens.shared import renewal_lock_ttl
from tests.support.sandbox import token_requests

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_dripping_head_is_cut_off_at_the_deadline(configure, sandbox):
    configure(CONNECT_TIMEOUT=0.5, READ_TIMEOUT=1.0)  # deadline 1.5 s; each byte comes within 0.3 s
    sandbox.state.add_fault(Fault(target="token", kind="drip_head", delay=0.3, times=1))
    started = time.monotonic()

    with pytest.raises(TokenTimeout, match="CONNECT_TIMEOUT"):
        TokenEndpoint(get_config()).request_token()

    # The head is ~150 bytes: dripped in full it takes ~45 s. A guard against hanging, not a timing claim.
    assert time.monotonic() - started < 20
    assert TokenEndpoint(get_config()).request_token().value  # the next request is unharmed


def test_a_quick_dripping_head_still_delivers(configure, sandbox):
    sandbox.state.add_fault(Fault(target="token", kind="drip_head", delay=0.001, times=1))
    assert TokenEndpoint(get_config()).request_token().value.count(".") == 2


def test_no_second_renewal_while_a_slow_head_holds_the_lock(configure, sandbox):
    """While the first renewal's answer drips, another process finds the lock held and does not renew."""
    configure(CONNECT_TIMEOUT=0.5, READ_TIMEOUT=1.0, TOKEN_WAIT_TIMEOUT=1.0)
    config = get_config()
    assert renewal_lock_ttl(config) > request_deadline(config)
    sandbox.state.add_fault(Fault(target="token", kind="drip_head", delay=0.3, times=1))
    first, second = TokenManager(config), TokenManager(config)
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(_result(first)))
    thread.start()
    while token_requests(sandbox) == 0 and thread.is_alive():  # the first renewal's request has arrived
        time.sleep(0.01)

    assert second.shared.read_state().lock_holder is not None
    thread.join(timeout=30)
    assert isinstance(outcome[0], TokenTimeout)
    assert token_requests(sandbox) == 1  # the timed-out request only; its backoff stops the second


def _result(manager: TokenManager) -> object:
    try:
        return manager.get_token()
    except Exception as err:  # collected for the assertions
        return err
