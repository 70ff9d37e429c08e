"""Sealed cache entries: bound to their key and kind, opened with every key, sealed for all."""

from __future__ import annotations

import base64
import math
import pickle

import pytest

from bettorsense import entries
from bettorsense.conf import get_config
from bettorsense.sealing import MAX_SEALED_CHARS, EntryTooLarge, Verdict, open_sealed, seal, unseal

OLD = "old-key-" + "o" * 40
NEW = "new-key-" + "n" * 40
KEY = "bettorsense:abc:token"


@pytest.fixture
def keys(settings):
    def configure(*, secret: str = OLD, fallbacks: tuple[str, ...] = (), token_key: object = "") -> None:
        settings.SECRET_KEY = secret
        settings.SECRET_KEY_FALLBACKS = list(fallbacks)
        settings.BETTORSENSE = {"TOKEN_ENCRYPTION_KEY": token_key}

    return configure


def test_a_sealed_entry_opens_under_its_key_and_kind_only(keys):
    keys()
    config = get_config()
    raw = seal(config, {"v": "abc", "n": 1.5}, key=KEY, kind="token")
    assert unseal(config, raw, key=KEY, kind="token") == {"v": "abc", "n": 1.5}
    assert open_sealed(config, raw, key=KEY + "x", kind="token").verdict is Verdict.MALFORMED
    assert open_sealed(config, raw, key="bettorsense:other:token", kind="token").verdict is Verdict.MALFORMED
    assert open_sealed(config, raw, key=KEY, kind="backoff").verdict is Verdict.MALFORMED
    assert "abc" not in raw  # the payload is encrypted, not only signed


def test_a_new_key_with_the_old_as_fallback_reads_and_is_read_by_the_old(keys):
    keys(secret=OLD)
    old = get_config()
    by_old = seal(old, {"n": 1}, key=KEY, kind="token")
    keys(secret=NEW, fallbacks=(OLD,))
    new = get_config()
    by_new = seal(new, {"n": 2}, key=KEY, kind="token")
    assert unseal(new, by_old, key=KEY, kind="token") == {"n": 1}
    assert unseal(old, by_new, key=KEY, kind="token") == {"n": 2}
    keys(secret=NEW)  # the rotation is over: the old key opens nothing new
    done = get_config()
    assert unseal(old, seal(done, {"n": 3}, key=KEY, kind="token"), key=KEY, kind="token") is None
    assert unseal(done, by_old, key=KEY, kind="token") is None


def test_token_encryption_key_may_be_a_list_first_seals_all_open(keys):
    keys(token_key=[NEW, OLD])
    both = get_config()
    assert both.encryption_keys == (NEW, OLD)
    keys(token_key=OLD)
    only_old = get_config()
    assert only_old.encryption_keys == (OLD,)
    assert unseal(only_old, seal(both, {"n": 1}, key=KEY, kind="k"), key=KEY, kind="k") == {"n": 1}
    assert unseal(both, seal(only_old, {"n": 2}, key=KEY, kind="k"), key=KEY, kind="k") == {"n": 2}
    keys(token_key=NEW)
    assert unseal(get_config(), seal(only_old, {"n": 2}, key=KEY, kind="k"), key=KEY, kind="k") is None


@pytest.mark.parametrize("bad", [[], [""], ["a", 3], 42, {"a": "b"}, [f"key-{n}" for n in range(9)]])
def test_a_token_encryption_key_that_is_neither_string_nor_list_of_strings_is_refused(keys, bad):
    from bettorsense.exceptions import BettorSenseConfigurationError

    keys(token_key=bad)
    if bad == []:
        assert get_config().encryption_keys == (OLD,)  # empty: SECRET_KEY, as before
        return
    with pytest.raises(BettorSenseConfigurationError) as caught:
        get_config()
    assert "TOKEN_ENCRYPTION_KEY" in str(caught.value)


def test_the_fallbacks_follow_the_secret_key_when_no_token_key_is_set(keys):
    keys(secret=NEW, fallbacks=(OLD, ""))
    assert get_config().encryption_keys == (NEW, OLD)


def test_more_than_eight_keys_in_all_is_a_configuration_error(keys):
    from bettorsense.exceptions import BettorSenseConfigurationError

    keys(secret=NEW, fallbacks=tuple(f"old-{n}" for n in range(8)))
    with pytest.raises(BettorSenseConfigurationError, match="SECRET_KEY_FALLBACKS"):
        get_config()


def test_another_format_version_is_absent_not_malformed(keys):
    keys()
    config = get_config()
    raw = seal(config, {"n": 1}, key=KEY, kind="token")
    assert open_sealed(config, "bs2." + raw[4:], key=KEY, kind="token").verdict is Verdict.OTHER_VERSION
    assert open_sealed(config, None, key=KEY, kind="token").verdict is Verdict.ABSENT


HOSTILE: list[object] = [
    7,
    -1,
    3.5,
    float("nan"),
    True,
    b"bs1.abc",
    ["bs1."],
    {"until": "soon"},
    {"until": float("inf")},
    "",
    "bs1.",
    "bs1.....",
    "bs1.!!!!",
    "bs1." + "A" * 64,
    "bs1." + base64.urlsafe_b64encode(b"\0" * 40).decode(),
    "bs1." + "x" * (MAX_SEALED_CHARS + 1),
    "bs1." + ".".join(["AAAA"] * 5000),
    "bs" + "9" * 5000 + ".x",
    "bsé.x",
    pickle.dumps({"a": 1}),
    object(),
]


@pytest.mark.parametrize("raw", HOSTILE, ids=lambda raw: type(raw).__name__)
def test_hostile_values_are_malformed_and_never_raise(keys, raw):
    keys()
    assert open_sealed(get_config(), raw, key=KEY, kind="token").verdict is Verdict.MALFORMED


def test_a_truncated_or_flipped_entry_does_not_open(keys):
    keys()
    config = get_config()
    raw = seal(config, {"n": 1}, key=KEY, kind="token")
    for cut in range(len(raw)):
        assert open_sealed(config, raw[:cut], key=KEY, kind="token").verdict is not Verdict.OK
    flipped = raw[:-3] + ("A" if raw[-3] != "A" else "B") + raw[-2:]
    assert unseal(config, flipped, key=KEY, kind="token") is None


def test_payloads_that_are_not_plain_json_or_too_large_are_refused_on_seal(keys):
    keys()
    config = get_config()
    with pytest.raises(ValueError):
        seal(config, {"until": float("inf")}, key=KEY, kind="backoff")
    with pytest.raises(EntryTooLarge):
        seal(config, {"blob": "x" * MAX_SEALED_CHARS}, key=KEY, kind="profile")


# --- the field readers of bettorsense.entries ---------------------------------------------------


@pytest.mark.parametrize("value", [True, "1", None, [1], math.nan, math.inf, -math.inf, 10**400, 11, -1])
def test_a_number_out_of_type_or_range_is_malformed(value):
    with pytest.raises(entries.Malformed):
        entries.number({"n": value}, "n", low=0, high=10)


def test_numbers_in_range_are_read_as_floats():
    assert entries.number({"n": 3}, "n", low=0, high=10) == 3.0
    assert entries.whole({"n": 3}, "n") == 3
    with pytest.raises(entries.Malformed):
        entries.whole({"n": 3.0}, "n")


@pytest.mark.parametrize("value", [None, 5, "", "x" * 11, ["x"]])
def test_text_of_the_wrong_type_empty_or_too_long_is_malformed(value):
    with pytest.raises(entries.Malformed):
        entries.text({"s": value}, "s", max_length=10)


def test_optional_text_and_flags():
    assert entries.optional_text({}, "s", max_length=3) is None
    assert entries.optional_text({"s": ""}, "s", max_length=3) == ""
    assert entries.flag({"b": False}, "b") is False
    with pytest.raises(entries.Malformed):
        entries.flag({"b": 0}, "b")
