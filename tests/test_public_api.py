"""The public surface, pinned: a change to it fails here and has to be made on purpose.

What a host project may import is ``bettorsense.__all__`` and the classes of
``bettorsense.exceptions``; for each error its bases (which ``except`` clauses catch it) and
``retryable`` (whether to retry) are part of the contract. Changing a pin below is a release note.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

import bettorsense
from bettorsense import exceptions

BASE_DIR = Path(__file__).resolve().parent.parent

PUBLIC_NAMES = [
    "BettorSenseError",
    "CategoryScore",
    "OperatorActionRequired",
    "ProfileSource",
    "RiskBand",
    "RiskProfile",
    "TransientError",
    "__version__",
    "access_purpose",
    "get_access_token",
    "get_player_risk_profile",
    "iter_risk_profile_pages",
    "iter_risk_profiles",
    "record_access",
    "risk_band_changed",
    "run_sync",
]

# Where each public name is defined: bettorsense re-exports those very objects.
DEFINED_IN = {
    "BettorSenseError": "bettorsense.exceptions",
    "CategoryScore": "bettorsense.profiles",
    "OperatorActionRequired": "bettorsense.exceptions",
    "ProfileSource": "bettorsense.profiles",
    "RiskBand": "bettorsense.profiles",
    "RiskProfile": "bettorsense.profiles",
    "TransientError": "bettorsense.exceptions",
    "get_access_token": "bettorsense.tokens.manager",
    "get_player_risk_profile": "bettorsense.services",
    "iter_risk_profile_pages": "bettorsense.services",
    "iter_risk_profiles": "bettorsense.services",
    "risk_band_changed": "bettorsense.signals",
    "run_sync": "bettorsense.sync",
    "access_purpose": "bettorsense.privacy.access",
    "record_access": "bettorsense.privacy.access",
}

# Every class of bettorsense.exceptions: (its direct bases, retryable).
EXCEPTIONS = {
    "BettorSenseConfigurationError": (("ImproperlyConfigured",), False),
    "UnknownClient": (("BettorSenseConfigurationError",), False),
    "BettorSenseError": (("Exception",), False),
    "TransientError": (("BettorSenseError",), True),
    "OperatorActionRequired": (("BettorSenseError",), False),
    "TokenError": (("BettorSenseError",), False),
    "InvalidCredentials": (("TokenError", "OperatorActionRequired"), False),
    "AudienceNotAllowed": (("TokenError", "OperatorActionRequired"), False),
    "TokenRequestRejected": (("TokenError", "OperatorActionRequired"), False),
    "TokenRateLimited": (("TokenError", "TransientError"), True),
    "TokenServerError": (("TokenError", "TransientError"), True),
    "TokenTimeout": (("TokenError", "TransientError"), True),
    "TokenEndpointUnreachable": (("TokenError", "TransientError"), True),
    "MalformedTokenResponse": (("TokenError", "OperatorActionRequired"), False),
    "TokenRedirected": (("TokenError", "OperatorActionRequired"), False),
    "TokenBackoff": (("TokenError", "TransientError"), True),
    "TokenWaitTimeout": (("TokenError", "TransientError"), True),
    "InvalidInput": (("BettorSenseError", "ValueError"), False),
    "AuthenticationFailed": (("OperatorActionRequired",), False),
    "AccessDenied": (("OperatorActionRequired",), False),
    "ProfileUnavailable": (("BettorSenseError",), False),
    "PlayerNotFound": (("ProfileUnavailable",), False),
    "ProfileNotCreated": (("ProfileUnavailable",), False),
    "ProfileInactive": (("ProfileUnavailable",), False),
    "RateLimited": (("TransientError",), True),
    "ServiceUnavailable": (("TransientError",), True),
    "BadResponse": (("OperatorActionRequired",), False),
    "SyncRefused": (("Exception",), True),
    "SyncAlreadyRunning": (("SyncRefused",), True),
    "AccessNotRecorded": (("TransientError",), True),
    "ErasureRefused": (("InvalidInput",), False),
}

# What a caller does about an error: each concrete error is of exactly one kind.
KINDS = (
    exceptions.TransientError,
    exceptions.OperatorActionRequired,
    exceptions.InvalidInput,
    exceptions.ProfileUnavailable,
)


def exception_classes() -> dict[str, type[BaseException]]:
    return {
        name: value
        for name, value in vars(exceptions).items()
        if isinstance(value, type) and issubclass(value, BaseException) and value.__module__ == exceptions.__name__
    }


def test_all_is_the_pinned_sorted_list() -> None:
    assert bettorsense.__all__ == PUBLIC_NAMES
    assert sorted(bettorsense.__all__) == bettorsense.__all__


def test_each_public_name_is_the_object_its_module_defines() -> None:
    for name, module in DEFINED_IN.items():
        assert getattr(bettorsense, name) is getattr(importlib.import_module(module), name), name
    assert set(DEFINED_IN) | {"__version__"} == set(bettorsense.__all__)


def test_version_is_unreleased_0_2() -> None:
    assert bettorsense.__version__ == "0.2.0.dev0"


def test_star_import_and_dir_show_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from bettorsense import *", namespace)  # noqa: S102
    assert sorted(name for name in namespace if name != "__builtins__") == PUBLIC_NAMES
    listed = dir(bettorsense)
    assert set(PUBLIC_NAMES) <= set(listed)
    # Submodules and helpers are internal: reachable, never advertised.
    assert [name for name in listed if not name.startswith("__")] == [n for n in PUBLIC_NAMES if n != "__version__"]


# Run in a fresh interpreter without settings: the test process has imported everything already.
_FRESH_IMPORT = """
import json, sys
import bettorsense
dir(bettorsense)
seen = {"import": sorted(m for m in sys.modules if m.split(".")[0] in {"bettorsense", "django", "requests"})}
bettorsense.RiskBand
seen["RiskBand"] = ["django.db.models" in sys.modules, "bettorsense.profiles" in sys.modules]
try:
    bettorsense.get_token
except AttributeError as err:
    seen["get_token"] = str(err)
from bettorsense import redaction
seen["submodule"] = redaction.__name__
print(json.dumps(seen))
"""


def test_import_bettorsense_loads_neither_the_orm_nor_requests() -> None:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", _FRESH_IMPORT], cwd=BASE_DIR, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["import"] == ["bettorsense"]
    # The first use of a name imports what it needs: the check above can see the ORM arrive.
    assert seen["RiskBand"] == [True, True]
    assert seen["get_token"] == "module 'bettorsense' has no attribute 'get_token'"
    assert seen["submodule"] == "bettorsense.redaction"


def test_every_exception_class_keeps_its_bases_and_retryable() -> None:
    found = {
        name: (tuple(base.__name__ for base in cls.__bases__), getattr(cls, "retryable", None))
        for name, cls in exception_classes().items()
    }
    assert found == EXCEPTIONS


def test_every_concrete_error_is_of_exactly_one_kind() -> None:
    groupings = {exceptions.BettorSenseError, exceptions.TokenError}
    for name, cls in exception_classes().items():
        if not issubclass(cls, exceptions.BettorSenseError) or cls in groupings:
            continue
        kinds = [kind.__name__ for kind in KINDS if issubclass(cls, kind)]
        assert len(kinds) == 1, (name, kinds)
        assert cls.retryable is issubclass(cls, exceptions.TransientError), name


def test_configuration_errors_stay_outside_the_hierarchy() -> None:
    assert issubclass(exceptions.BettorSenseConfigurationError, ImproperlyConfigured)
    assert not issubclass(exceptions.BettorSenseConfigurationError, exceptions.BettorSenseError)


def test_the_readme_api_section_documents_every_public_name_and_error() -> None:
    readme = (BASE_DIR / "README.md").read_text()
    assert "\n## API\n" in readme
    section = readme.split("\n## API\n", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in [*PUBLIC_NAMES, *EXCEPTIONS] if f"`{name}`" not in section]
    assert missing == []
    table_rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {line.split("`")[1] for line in table_rows}
    assert set(EXCEPTIONS) <= documented
