"""The token lifecycle: one OAuth 2.0 client-credentials token for the whole fleet.

``manager`` orchestrates; ``token`` is the value; ``shared`` keeps the fleet's entry, lock and
backoff in the cache; ``crypto`` seals the cached token.
"""

from bettorsense.tokens.manager import (
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
