"""The token lifecycle: one OAuth 2.0 client-credentials token for the whole fleet.

``decision`` holds the rules of who renews when, as a pure function; ``manager`` reads the fleet's
state, asks them and acts; ``endpoint`` requests tokens; ``token`` is the value; ``shared`` keeps
the fleet's entry, lock and backoff in the cache, sealed (:mod:`bettorsense.sealing`); ``clock``
is the time they all read.
"""

from bettorsense.tokens.manager import (
    Caller,
    RefreshOutcome,
    TokenManager,
    TokenTiming,
    force_refresh,
    get_access_token,
    get_token,
    get_token_manager,
    invalidate,
    parse_token_response,
    refresh_if_due,
    reset_process_state,
)
from bettorsense.tokens.token import AccessToken, Tombstone

__all__ = [
    "AccessToken",
    "Caller",
    "RefreshOutcome",
    "TokenManager",
    "TokenTiming",
    "Tombstone",
    "force_refresh",
    "get_access_token",
    "get_token",
    "get_token_manager",
    "invalidate",
    "parse_token_response",
    "refresh_if_due",
    "reset_process_state",
]
