"""Encryption of the cached token: someone who can read the cache server cannot use it.

The key material (``TOKEN_ENCRYPTION_KEY``, by default ``SECRET_KEY``) is read from the config
inside each expression that needs it and never held in a local or a parameter: error reports and
error trackers show every frame's locals, even where ``sensitive_variables`` applies.
"""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

if TYPE_CHECKING:
    from bettorsense.conf import Config

_INFO = b"bettorsense token cache v1"


@lru_cache(maxsize=8)
def _fernet(config: Config) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(config.encryption_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def seal(config: Config, payload: dict[str, Any]) -> str:
    """Encrypt and authenticate a JSON-able dict under the config's key."""
    return _fernet(config).encrypt(json.dumps(payload, separators=(",", ":")).encode()).decode()


def unseal(config: Config, sealed: str) -> dict[str, Any] | None:
    """The dict sealed under the config's key, or None if sealed under another key or tampered with."""
    try:
        data = json.loads(_fernet(config).decrypt(sealed.encode()))
    except (InvalidToken, ValueError, TypeError):
        return None
    return data if isinstance(data, dict) else None
