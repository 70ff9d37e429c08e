"""bettorsense: a Django app for Sportradar's Bettor Sense responsible-gaming API.

The public API is what this package exports, ``bettorsense.__all__``::

    from bettorsense import get_player_risk_profile, RiskBand, TransientError

plus :mod:`bettorsense.exceptions` (every error class), :mod:`bettorsense.signals`, the Celery task
names ``bettorsense.tasks.refresh_token``, ``bettorsense.tasks.sync_risk_profiles`` and
``bettorsense.tasks.purge_expired``, the
``BETTORSENSE`` settings, ``bettorsense.urls`` and the ``bettorsense_*`` management commands.
Every other module and name is internal and may change in any release.

The names are imported on first use, so ``import bettorsense`` loads neither Django's ORM nor
requests, and needs no settings.
"""

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0.dev0"

# Public name -> the internal module that defines it.
_ORIGINS: dict[str, str] = {
    "get_player_risk_profile": "bettorsense.services",
    "iter_risk_profiles": "bettorsense.services",
    "iter_risk_profile_pages": "bettorsense.services",
    "RiskProfile": "bettorsense.profiles",
    "CategoryScore": "bettorsense.profiles",
    "RiskBand": "bettorsense.profiles",
    "ProfileSource": "bettorsense.profiles",
    "risk_band_changed": "bettorsense.signals",
    "BettorSenseError": "bettorsense.exceptions",
    "TransientError": "bettorsense.exceptions",
    "OperatorActionRequired": "bettorsense.exceptions",
    "get_access_token": "bettorsense.tokens",
    "run_sync": "bettorsense.sync",
    "access_purpose": "bettorsense.privacy.access",
    "record_access": "bettorsense.privacy.access",
}

__all__ = [
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

if TYPE_CHECKING:
    from bettorsense.exceptions import BettorSenseError, OperatorActionRequired, TransientError
    from bettorsense.privacy.access import access_purpose, record_access
    from bettorsense.profiles import CategoryScore, ProfileSource, RiskBand, RiskProfile
    from bettorsense.services import get_player_risk_profile, iter_risk_profile_pages, iter_risk_profiles
    from bettorsense.signals import risk_band_changed
    from bettorsense.sync import run_sync
    from bettorsense.tokens import get_access_token
else:
    # Defined only at run time: to a type checker the eager imports above are the whole module, so a
    # misspelt name fails the check instead of resolving to this function's Any.
    def __getattr__(name: str) -> Any:
        origin = _ORIGINS.get(name)
        if origin is None:
            # AttributeError, not ImportError: ``from bettorsense import tokens`` relies on it to fall
            # back to importing the submodule.
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(origin), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    # The public names, whether imported yet or not, and the module's own dunders; the helpers and
    # the submodules already imported stay out of sight, being internal.
    return sorted(set(__all__) | {name for name in globals() if name.startswith("__")})
