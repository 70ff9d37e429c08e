"""Recording each look at a player's risk data, and the hook for the host's own service calls.

The app's own screens call :func:`record_access` themselves: the profile page and its history in
the admin, ``bettorsense_profile``, the review queue and the export. A look that cannot be
recorded is not shown: the database error propagates (as :class:`AccessNotRecorded` from the
service hook), because an access log with gaps answers "who looked at X" wrongly.

Service calls made by the host's own code are the host's to log. A host that wants them in this
log too wraps them in :func:`access_purpose`::

    from bettorsense import access_purpose

    with access_purpose("chargeback review", user=request.user):
        profile = get_player_risk_profile(account_id)

Each profile returned by :func:`bettorsense.get_player_risk_profile` inside the block writes one
record (``through="host"``) with that user and purpose. Outside such a block the service calls
record nothing; the batch walk (``iter_risk_profiles``) never records, since it feeds the store,
not a person.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError

from bettorsense.exceptions import AccessNotRecorded
from bettorsense.privacy.models import AccessRecord

Through = AccessRecord.Through

_PURPOSE_MAX = AccessRecord._meta.get_field("purpose").max_length or 200
_USERNAME_MAX = AccessRecord._meta.get_field("username").max_length or 150
_ACCOUNT_MAX = AccessRecord._meta.get_field("account_id").max_length or 64


@dataclass(frozen=True)
class _HostPurpose:
    purpose: str
    user: Any
    username: str


_host_purpose: contextvars.ContextVar[_HostPurpose | None] = contextvars.ContextVar(
    "bettorsense_access_purpose", default=None
)


def _who(user: Any, username: str) -> tuple[Any, str]:
    """The user to link (a saved, authenticated one only) and the name to keep."""
    linked = user if getattr(user, "is_authenticated", False) and getattr(user, "pk", None) is not None else None
    name = username or (linked.get_username() if linked is not None else "")
    return linked, str(name)[:_USERNAME_MAX]


def record_access(*, user: Any, account_id: str, through: str, purpose: str = "", username: str = "") -> AccessRecord:
    """Record that ``user`` looked at ``account_id``'s risk data through ``through``.

    ``user`` is a Django user, or None (a command, a task); ``username`` names who when there is no
    user (``bettorsense_profile`` passes the operating-system user).
    """
    return record_accesses(user=user, account_ids=[account_id], through=through, purpose=purpose, username=username)[0]


def record_accesses(
    *, user: Any, account_ids: Iterable[str], through: str, purpose: str = "", username: str = ""
) -> list[AccessRecord]:
    """One record per account (an export, a queue page), written in one statement."""
    linked, name = _who(user, username)
    way = Through(through)
    rows = [
        AccessRecord(
            user=linked,
            username=name,
            account_id=str(account)[:_ACCOUNT_MAX],
            through=way,
            purpose=str(purpose or "")[:_PURPOSE_MAX],
        )
        for account in dict.fromkeys(account_ids)
    ]
    return AccessRecord.objects.bulk_create(rows)


def record_listed_accesses(request: Any, response: Any, *, through: str, purpose: str) -> None:
    """One record per account on the admin change list ``response`` rendered (none for a redirect)."""
    listing = (getattr(response, "context_data", None) or {}).get("cl")
    if listing is not None:
        accounts = [row.account_id for row in listing.result_list]
        record_accesses(user=request.user, account_ids=accounts, through=through, purpose=purpose)


@contextmanager
def access_purpose(purpose: str, *, user: Any = None, username: str = "") -> Iterator[None]:
    """Inside the block, each profile the service calls return is recorded with this purpose.

    Blocks nest (the innermost wins) and follow ``contextvars``: threads and tasks started inside
    do not inherit the purpose unless they copy the context.
    """
    token = _host_purpose.set(_HostPurpose(purpose=str(purpose), user=user, username=username))
    try:
        yield
    finally:
        _host_purpose.reset(token)


def record_host_access(account_id: str) -> None:
    """Called by the service call on each profile it returns: records it inside :func:`access_purpose`."""
    current = _host_purpose.get()
    if current is None:
        return
    try:
        record_access(
            user=current.user,
            account_id=account_id,
            through=Through.HOST,
            purpose=current.purpose,
            username=current.username,
        )
    except DatabaseError as err:
        raise AccessNotRecorded(f"The access log could not be written ({type(err).__name__}).") from err
