"""Pseudonyms: how log lines and pseudonymised rows name a player.

A pseudonym is ``ps_`` and the first 16 hex digits (64 bits) of an HMAC-SHA256 of the account id,
keyed from ``PSEUDONYM_KEY`` (by default the project's ``SECRET_KEY``). It is stable, so one
player's log lines can be followed, and whoever holds the key can find the lines of a given account
(:func:`pseudonym` of it), while a reader of the logs alone cannot go back to the id. 64 bits keep
ten million players apart but for a chance of about 1 in 370,000 of any one collision.

Log lines name players through :func:`log_name`: the pseudonym, or the account id itself when
``LOG_ACCOUNT_IDS`` is on.
"""

from __future__ import annotations

from django.conf import settings
from django.utils.crypto import salted_hmac
from django.views.decorators.debug import sensitive_variables

from bettorsense.conf import get_config
from bettorsense.exceptions import BettorSenseConfigurationError

PREFIX = "ps_"
_SALT = "bettorsense.privacy.pseudonym"


@sensitive_variables()
def _key() -> str:
    try:
        return get_config().pseudonym_key
    except BettorSenseConfigurationError:  # a log line must not fail on a wrong setting elsewhere
        return str(settings.SECRET_KEY)


@sensitive_variables()
def pseudonym(account_id: str) -> str:
    """The keyed hash that stands for ``account_id``: ``ps_`` and 16 hex digits."""
    return PREFIX + salted_hmac(_SALT, str(account_id), secret=_key(), algorithm="sha256").hexdigest()[:16]


def log_name(account_id: str) -> str:
    """How a log line names the player: the pseudonym, unless ``LOG_ACCOUNT_IDS`` is on."""
    try:
        plain = get_config().log_account_ids
    except BettorSenseConfigurationError:
        plain = False
    return str(account_id) if plain else pseudonym(account_id)
