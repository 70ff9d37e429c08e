"""Encryption of the cached token: someone who can read the cache server cannot use it."""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"bettorsense token cache v1"


@lru_cache(maxsize=8)
def _fernet(key_material: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(key_material.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def seal(key_material: str, payload: dict[str, Any]) -> str:
    """Encrypt and authenticate a JSON-able dict."""
    return _fernet(key_material).encrypt(json.dumps(payload, separators=(",", ":")).encode()).decode()


def unseal(key_material: str, sealed: str) -> dict[str, Any] | None:
    """The dict sealed with this key, or None if it was sealed with another key or tampered with."""
    try:
        data = json.loads(_fernet(key_material).decrypt(sealed.encode()))
    except (InvalidToken, ValueError, TypeError):
        return None
    return data if isinstance(data, dict) else None
