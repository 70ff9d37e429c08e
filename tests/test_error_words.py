"""Error texts as an operator reads them: never cut mid-word, and "Vendor said" only for the vendor's words."""

from __future__ import annotations

import pytest

from bettorsense import telemetry, tokens
from bettorsense.conf import get_config
from bettorsense.exceptions import TokenBackoff, TokenRateLimited, TokenServerError
from bettorsense.sandbox import Fault
from bettorsense.text import ELLIPSIS, shorten, spelt_out
from bettorsense.tokens.manager import TokenManager

pytestmark = pytest.mark.django_db(transaction=True)

WORDS = " ".join(f"word{i}" for i in range(300))


@pytest.mark.parametrize("limit", [10, 31, 100, 299, 600])
def test_shorten_cuts_between_words_and_says_so(limit):
    short = shorten(WORDS, limit)
    assert len(short) <= limit and short.endswith(ELLIPSIS)
    kept = short[: -len(ELLIPSIS)].split()
    assert kept and all(word in WORDS.split() for word in kept)


def test_shorten_keeps_text_that_fits():
    assert shorten("The token endpoint failed.", 26) == "The token endpoint failed."


def test_shorten_cuts_a_single_long_word_where_it_must():
    assert shorten("x" * 50, 10) == "x" * 9 + ELLIPSIS


def test_class_names_are_spelt_out():
    assert spelt_out("TokenRateLimited") == "Token rate limited"
    assert spelt_out("ServiceUnavailable") == "Service unavailable"
    assert spelt_out("") == "unknown"


def test_a_recorded_error_is_cut_between_words(configure):
    config = get_config()
    telemetry.record_token_failure(config, TokenServerError(WORDS), origin="beat", duration=0.1)
    error = telemetry.read_token_state(config).last_error
    assert error is not None and error.error is not None
    assert error.error.endswith(ELLIPSIS) and len(error.error) <= telemetry.ERROR_LENGTH
    assert error.error[: -len(ELLIPSIS)].split()[-1] in WORDS.split()


def test_the_fleet_backoff_quotes_our_error_not_as_the_vendor_s(configure, sandbox):
    sandbox.state.add_fault(Fault(target="token", kind="retry_after", status=429, retry_after=30, times=1))
    with pytest.raises(TokenRateLimited) as first:
        tokens.get_access_token()
    with pytest.raises(TokenBackoff) as backing_off:
        TokenManager(get_config()).get_token()  # another process, same cache
    text = str(backing_off.value)
    assert backing_off.value.detail is None  # nothing here was sent by the vendor
    assert f"Vendor said: {first.value.message}" not in text
    assert first.value.message in text  # our own words, as our own
