"""The upgrade from 0.1: its Fernet token entry is read once, and only for the credentials it names."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.core.cache import caches

from bettorsense import tokens
from bettorsense.conf import get_config
from bettorsense.tokens.manager import TokenManager
from bettorsense.tokens.token import AccessToken
from tests.support.sandbox import token_requests

pytestmark = pytest.mark.django_db(transaction=True)


def entry_of_0_1(payload: dict[str, Any]) -> str:
    """What 0.1's ``tokens/crypto.py`` wrote: Fernet under HKDF(SECRET_KEY), the key not named."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"bettorsense token cache v1").derive(
        get_config().encryption_keys[0].encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived)).encrypt(json.dumps(payload).encode()).decode()


def payload_of(token: AccessToken) -> dict[str, Any]:
    return {"v": token.value, "t": token.token_type, "i": token.issued_at, "e": token.expires_at}


def test_a_0_1_token_entry_keeps_the_fleets_token_under_the_reuse_rule(configure, sandbox):
    sandbox.state.set_config(enforce_reuse=True)
    issued = tokens.get_token()
    shared = TokenManager(get_config()).shared
    caches[get_config().cache_alias].set(shared.token_key, entry_of_0_1(payload_of(issued)), 600)
    tokens.reset_process_state()  # a 0.2 process starting next to 0.1 ones

    assert tokens.get_token().value == issued.value
    assert token_requests(sandbox) == 1
    assert sandbox.state.stats()["reuse_violations"] == 0


def test_a_0_1_entry_copied_to_another_credential_sets_key_is_refused(configure, sandbox, settings):
    issued = tokens.get_token()
    raw = entry_of_0_1(payload_of(issued))
    configure(CLIENT_ID="another-client")
    shared = TokenManager(get_config()).shared
    caches[get_config().cache_alias].set(shared.token_key, raw, 600)
    assert shared.read_token() is None
    assert caches[get_config().cache_alias].get(shared.token_key) is None  # malformed to 0.2: removed


@pytest.mark.parametrize(
    "payload",
    [
        {"tombstone": "sha256:0123456789ab"},
        {"v": "not-a-jwt-" + "x" * 30, "t": "Bearer", "i": 1.0, "e": 2.0},
    ],
    ids=["tombstone", "opaque-token"],
)
def test_a_0_1_entry_that_cannot_prove_its_credentials_is_not_taken(configure, sandbox, payload):
    shared = TokenManager(get_config()).shared
    caches[get_config().cache_alias].set(shared.token_key, entry_of_0_1(payload), 600)
    assert shared.read_token() is None
    assert tokens.get_token().value  # renewed instead
