"""Sealed cache entries: JSON, encrypted and authenticated, bound to the key they sit under.

Every entry the app shares through the cache is a string ``bs<version>.<envelope>[.<envelope>...]``.
Each envelope is AES-256-GCM (``cryptography``) under a key derived from one of the config's
sealing keys (``TOKEN_ENCRYPTION_KEY``, by default ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS``).
The associated data names the format version, the entry's kind and the full cache key, so a copy
under another key or of another kind, a forged value, or a value from a key this process does not
hold, does not open.

The first key seals, every key opens; while there are several keys, the entry carries one
envelope per key, so processes that hold only the old key still read what the new ones write
during a rolling rotation. Drop a key from the list once no process seals with it alone.

The key material is read from the config inside each expression that needs it and never held in a
local or a parameter: error reports and error trackers show every frame's locals.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

if TYPE_CHECKING:
    from bettorsense.conf import Config

__all__ = ["FORMAT_VERSION", "MAX_SEALED_CHARS", "EntryTooLarge", "Opened", "Verdict", "open_sealed", "seal", "unseal"]

#: The entry format this version of the app writes and reads; entries of another version are
#: ignored as absent (not removed), so two versions can share a cache during a rolling upgrade.
FORMAT_VERSION: Final = 1
_PREFIX: Final = f"bs{FORMAT_VERSION}."
#: The longest raw value opened; anything longer is malformed without being decoded.
MAX_SEALED_CHARS: Final = 262_144
#: The most envelopes (keys) one entry may carry.
MAX_ENVELOPES: Final = 8
_KEY_ID_BYTES: Final = 4
_NONCE_BYTES: Final = 12
_INFO: Final = b"bettorsense cache entries v1"
_ANY_VERSION: Final = re.compile(r"bs[0-9]{1,4}\.")


class EntryTooLarge(ValueError):
    """The payload would make an entry longer than :data:`MAX_SEALED_CHARS`."""


class Verdict(enum.Enum):
    OK = "ok"
    ABSENT = "absent"  # nothing under the key
    OTHER_VERSION = "other version"  # another version's format: absent to us, left alone
    MALFORMED = "malformed"  # not an entry, forged, moved, of another kind, or under no key we hold


@dataclass(frozen=True)
class Opened:
    verdict: Verdict
    data: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Cipher:
    key_id: bytes
    aead: AESGCM


def _derive(config: Config, index: int) -> _Cipher:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        config.encryption_keys[index].encode()
    )
    return _Cipher(key_id=hashlib.sha256(b"key id\0" + derived).digest()[:_KEY_ID_BYTES], aead=AESGCM(derived))


@lru_cache(maxsize=8)
def _ciphers(config: Config) -> tuple[_Cipher, ...]:
    return tuple(_derive(config, index) for index in range(len(config.encryption_keys)))[:MAX_ENVELOPES]


def _associated_data(kind: str, key: str) -> bytes:
    return f"bettorsense\0v{FORMAT_VERSION}\0{kind}\0{key}".encode()


def seal(config: Config, payload: Mapping[str, Any], *, key: str, kind: str) -> str:
    """``payload`` as JSON, sealed for the cache key ``key``; raises EntryTooLarge or ValueError.

    ``payload`` must be JSON-able without NaN or infinities (ValueError otherwise).
    """
    plain = json.dumps(dict(payload), separators=(",", ":"), allow_nan=False).encode()
    associated = _associated_data(kind, key)
    envelopes = []
    for cipher in _ciphers(config):
        nonce = os.urandom(_NONCE_BYTES)
        sealed = cipher.key_id + nonce + cipher.aead.encrypt(nonce, plain, associated)
        envelopes.append(base64.urlsafe_b64encode(sealed).decode())
    entry = _PREFIX + ".".join(envelopes)
    if len(entry) > MAX_SEALED_CHARS:
        raise EntryTooLarge(f"A sealed {kind} entry would be {len(entry)} characters.")
    return entry


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number an entry may hold")


def open_sealed(config: Config, raw: object, *, key: str, kind: str) -> Opened:
    """What sits under ``key``, opened; never raises, whatever ``raw`` is."""
    if raw is None:
        return Opened(Verdict.ABSENT)
    if not isinstance(raw, str) or len(raw) > MAX_SEALED_CHARS:
        return Opened(Verdict.MALFORMED)
    if not raw.startswith(_PREFIX):
        return Opened(Verdict.OTHER_VERSION if _ANY_VERSION.match(raw) else Verdict.MALFORMED)
    envelopes = raw[len(_PREFIX) :].split(".", MAX_ENVELOPES)[:MAX_ENVELOPES]
    associated = _associated_data(kind, key)
    for encoded in envelopes:
        try:
            sealed = base64.urlsafe_b64decode(encoded.encode("ascii"))
        except (binascii.Error, ValueError):
            continue
        head, nonce, body = (
            sealed[:_KEY_ID_BYTES],
            sealed[_KEY_ID_BYTES : _KEY_ID_BYTES + _NONCE_BYTES],
            sealed[_KEY_ID_BYTES + _NONCE_BYTES :],
        )
        for cipher in _ciphers(config):
            if cipher.key_id != head or len(nonce) != _NONCE_BYTES:
                continue
            try:
                data = json.loads(cipher.aead.decrypt(nonce, body, associated), parse_constant=_reject_constant)
            except (InvalidTag, ValueError, RecursionError):
                continue
            return Opened(Verdict.OK, data) if isinstance(data, dict) else Opened(Verdict.MALFORMED)
    return Opened(Verdict.MALFORMED)


def unseal(config: Config, raw: object, *, key: str, kind: str) -> dict[str, Any] | None:
    """The payload sealed under ``key``, or None if absent, malformed, forged or of another version."""
    return open_sealed(config, raw, key=key, kind=kind).data
