"""The token entry of 0.1, read (never written) so that the upgrade to 0.2 keeps the fleet's token.

0.1 encrypted the token with Fernet, under a key derived from ``TOKEN_ENCRYPTION_KEY`` (by default
``SECRET_KEY``), without naming the cache key it sat under. Such an entry is taken only when the
token's own claims (the JWT's ``aud`` and ``azp``, read unverified) name this config's audience and
client id, so a 0.1 entry copied from another credential set's key is refused as 0.2's are. A
token that is not a JWT naming both, and a 0.1 tombstone, are not taken. To be removed in 0.3.

The key material is read from the config inside the expression that needs it, as in
:mod:`bettorsense.sealing`.
"""

from __future__ import annotations

import base64
import binascii
import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

if TYPE_CHECKING:
    from bettorsense.conf import Config

_INFO: Final = b"bettorsense token cache v1"
#: Every Fernet token starts with its version byte, 0x80, which base64 writes so.
_FERNET_START: Final = "gAAAAA"


def _fernet(config: Config, index: int) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        config.encryption_keys[index].encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


@lru_cache(maxsize=8)
def _fernets(config: Config) -> tuple[Fernet, ...]:
    return tuple(_fernet(config, index) for index in range(len(config.encryption_keys)))


def _claims(token: object) -> dict[str, Any]:
    if not isinstance(token, str):
        return {}
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _names(config: Config, data: dict[str, Any]) -> bool:
    claims = _claims(data.get("v"))
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    return config.audience in audiences and claims.get("azp") == config.client_id


def open_legacy_token(config: Config, raw: object) -> dict[str, Any] | None:
    """The payload of a 0.1 token entry whose token names this config's credentials, else None."""
    if not isinstance(raw, str) or not raw.startswith(_FERNET_START) or len(raw) > 4 * config.token_max_length:
        return None
    for fernet in _fernets(config):
        try:
            data = json.loads(fernet.decrypt(raw.encode("ascii")))
        except (InvalidToken, ValueError, RecursionError):
            continue
        return data if isinstance(data, dict) and "tombstone" not in data and _names(config, data) else None
    return None
