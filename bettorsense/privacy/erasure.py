"""Erasing one player: the stored profile, its history, every cached copy, and (by setting) the
reviews and access-log rows about them.

The profile and the history are always deleted. Reviews and access-log rows follow
``ERASE_REVIEWS`` and ``ERASE_ACCESS_LOG``, because some regulators require them kept:

* ``delete``: the rows go;
* ``pseudonymise``: the rows stay, and every text or JSON value that is the account id, or holds
  it as a word, is replaced by its pseudonym (:mod:`bettorsense.privacy.pseudonyms`), so whoever
  holds the key can still find the rows of an account they name;
* ``keep``: the rows stay as they are.

A kept or pseudonymised row that links to the profile or to a history row loses that link (it is
set to null); a link that cannot be null makes the erasure refuse before it changes anything.

The database work is one transaction; the cache entries are removed after it commits, then this
process's memo of them (:mod:`bettorsense.profile_memo`). Another process's memo cannot be reached
from here: its copy ends within ``PROFILE_MEMO_TTL`` of being put. Sportradar
keeps its own profile: a later service call or sync brings the player back unless the host stops
asking for them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db import models, transaction

from bettorsense.client.validation import account_id as valid_account_id
from bettorsense.conf import Config, client_names, get_config
from bettorsense.exceptions import ErasureRefused
from bettorsense.models import PlayerRiskProfile, RiskProfileChange
from bettorsense.privacy.cache_copies import CacheOutcome, find_and_remove
from bettorsense.privacy.models import AccessRecord
from bettorsense.privacy.pseudonyms import pseudonym
from bettorsense.profile_memo import MEMO
from bettorsense.services import account_digest, profile_cache_key

DELETE, PSEUDONYMISE, KEEP = "delete", "pseudonymise", "keep"
_REVIEW_MODULE = "bettorsense.reviews"
_TEXT_FIELDS = (models.CharField, models.TextField)


#: One table's part of the erasure: the model, what to do (a policy) and the player's rows.
_Step = tuple[type[models.Model], str, "models.QuerySet[Any]"]


@dataclass(frozen=True)
class TableOutcome:
    """What one table held about the player, and what became of it."""

    table: str
    policy: str
    found: int
    removed: int
    pseudonymised: int
    kept: int


@dataclass(frozen=True)
class Erasure:
    dry_run: bool
    tables: list[TableOutcome] = field(default_factory=list)
    caches: list[CacheOutcome] = field(default_factory=list)
    #: The player's entries in this process's profile memo, removed unless a dry run.
    memo: int = 0
    #: ``PROFILE_MEMO_TTL``: within it, other processes' memo copies end on their own.
    memo_ttl: float = 0.0

    @property
    def complete(self) -> bool:
        return not any(outcome.error for outcome in self.caches)


def erase_player(account_id: str, *, pairs: Iterable[tuple[int, int]] = (), dry_run: bool = False) -> Erasure:
    """Erase ``account_id`` under every bookmaker pair; ``pairs`` adds pairs whose cache to clear.

    The pairs of the player's stored profiles and each credential set's configured pair are always
    included, and the cached copies of every credential set are cleared.
    """
    config = get_config()
    sets = [get_config(name) for name in client_names()]
    account = valid_account_id(account_id)
    with transaction.atomic():
        profiles = PlayerRiskProfile.objects.filter(account_id=account)
        known_pairs = {*pairs, *profiles.values_list("bookmaker_id", "sub_bookmaker_id")}
        for one_set in sets:
            if one_set.bookmaker_id is not None and one_set.sub_bookmaker_id is not None:
                known_pairs.add((one_set.bookmaker_id, one_set.sub_bookmaker_id))
        changes = RiskProfileChange.objects.filter(profile__in=profiles)
        plan: list[_Step] = [
            *_linked_tables(config, account, profiles, changes),
            (AccessRecord, config.erase_access_log, AccessRecord.objects.filter(account_id=account)),
            (RiskProfileChange, DELETE, changes),
            (PlayerRiskProfile, DELETE, profiles),
        ]
        outcomes = [_apply(model, policy, rows, account, dry_run=dry_run) for model, policy, rows in plan]
        if dry_run:
            transaction.set_rollback(True)
    keys = [profile_cache_key(one_set, b, s, account) for one_set in sets for b, s in sorted(known_pairs)]
    caches = find_and_remove(config, account, keys, dry_run=dry_run)
    # After the shared cache: cleared first, the memo could be refilled from an entry not yet removed.
    memo = MEMO.forget_account(account_digest(account), dry_run=dry_run)
    return Erasure(dry_run=dry_run, tables=outcomes, caches=caches, memo=memo, memo_ttl=config.profile_memo_ttl)


def _linked_tables(
    config: Config, account: str, profiles: models.QuerySet[Any], changes: models.QuerySet[Any]
) -> list[_Step]:
    """Every other model of the app that holds the account id or links to its profile or history.

    Reviews (models of ``bettorsense.reviews``) follow ``ERASE_REVIEWS``; any other such table is
    data derived from the profile and is deleted with it. In the app's other tables, a text value
    that quotes the id (a sync run's error) has it replaced by the pseudonym.
    """
    found: list[_Step] = []
    core = {PlayerRiskProfile, RiskProfileChange, AccessRecord}
    for model in apps.get_app_config("bettorsense").get_models():
        if model in core or model._meta.managed is False:
            continue
        links = []
        for model_field in model._meta.get_fields():
            if model_field.name == "account_id" and not model_field.is_relation:
                links.append(models.Q(account_id=account))
            elif model_field.many_to_one and model_field.related_model is PlayerRiskProfile:
                links.append(models.Q(**{f"{model_field.name}__in": profiles}))
            elif model_field.many_to_one and model_field.related_model is RiskProfileChange:
                links.append(models.Q(**{f"{model_field.name}__in": changes}))
        if links:
            policy = config.erase_reviews if model.__module__.startswith(_REVIEW_MODULE) else DELETE
            found.append((model, policy, model._default_manager.filter(_any(links))))
            continue
        # Free text that may quote the id (a sync run's error): the id is replaced.
        texts = [f.name for f in model._meta.concrete_fields if isinstance(f, _TEXT_FIELDS) and not f.choices]
        if texts:
            mentions = _any([models.Q(**{f"{name}__contains": account}) for name in texts])
            found.append((model, PSEUDONYMISE, model._default_manager.filter(mentions)))
    return found


def _any(conditions: list[models.Q]) -> models.Q:
    combined = conditions[0]
    for condition in conditions[1:]:
        combined |= condition
    return combined


def _apply(
    model: type[models.Model], policy: str, rows: models.QuerySet[Any], account: str, *, dry_run: bool
) -> TableOutcome:
    label = model._meta.label
    matched = list(rows.order_by("pk"))
    count = len(matched)
    if policy == DELETE:
        if not dry_run:
            _delete_leaves_first(model, {row.pk for row in matched})
        return TableOutcome(label, policy, count, count, 0, 0)
    links = _links_to_erased(model)
    if matched and links:
        _refuse_unless_nullable(model, links)
    changed = 0
    for row in matched:
        updated = _without_links(row, links)
        if policy == PSEUDONYMISE:
            updated |= _pseudonymise(row, account)
        if updated and not dry_run:  # an update, not save(): reviews refuse save() once recorded
            model._default_manager.filter(pk=row.pk).update(**{name: getattr(row, name) for name in updated})
        changed += bool(updated) and policy == PSEUDONYMISE
    return TableOutcome(label, policy, count, 0, changed, count - changed)


def _delete_leaves_first(model: type[models.Model], pks: set[Any]) -> None:
    """Delete ``pks``, rows that others of them refer to last (a review's corrections protect it)."""
    manager = model._default_manager
    own_links = [
        f for f in model._meta.concrete_fields if isinstance(f, models.ForeignKey) and f.related_model is model
    ]
    remaining = set(pks)
    try:
        while remaining:
            referenced: set[Any] = set()
            for link in own_links:
                referenced |= set(
                    manager.filter(**{f"{link.attname}__in": remaining}).values_list(link.attname, flat=True)
                )
            leaves = (remaining - referenced) or remaining  # a cycle: one delete, and the database decides
            manager.filter(pk__in=leaves).delete()
            remaining -= leaves
    except models.ProtectedError as err:
        raise ErasureRefused(
            f"{model._meta.label} rows of the player are referred to by rows that protect them; nothing was changed."
        ) from err


def _links_to_erased(model: type[models.Model]) -> list[models.ForeignKey[Any, Any]]:
    return [
        f
        for f in model._meta.get_fields()
        if isinstance(f, models.ForeignKey) and f.related_model in (PlayerRiskProfile, RiskProfileChange)
    ]


def _refuse_unless_nullable(model: type[models.Model], links: list[models.ForeignKey[Any, Any]]) -> None:
    fixed = [link.name for link in links if not link.null]
    if fixed:
        raise ErasureRefused(
            f"{model._meta.label} rows are to be kept, but their link ({', '.join(fixed)}) to the erased "
            "profile cannot be null; nothing was changed. Set the erase setting of that table to 'delete'."
        )


def _without_links(row: models.Model, links: list[models.ForeignKey[Any, Any]]) -> set[str]:
    cut = set()
    for link in links:
        if getattr(row, link.attname) is not None:
            setattr(row, link.attname, None)
            cut.add(link.attname)
    return cut


def _pseudonymise(row: models.Model, account: str) -> set[str]:
    """Replace the account id in every text and JSON value of ``row``; the attnames of the fields changed."""
    word = re.compile(rf"(?<![\w-]){re.escape(account)}(?![\w-])")
    alias = pseudonym(account)
    changed = set()
    for model_field in row._meta.concrete_fields:
        value = getattr(row, model_field.attname)
        if isinstance(model_field, _TEXT_FIELDS) and isinstance(value, str):
            new: Any = alias if value == account else word.sub(alias, value)
        elif isinstance(model_field, models.JSONField):
            new = _replace_in_json(value, account, word, alias)
        else:
            continue
        if new != value:
            setattr(row, model_field.attname, new)
            changed.add(model_field.attname)
    return changed


def _replace_in_json(value: Any, account: str, word: re.Pattern[str], alias: str) -> Any:
    if isinstance(value, str):
        return alias if value == account else word.sub(alias, value)
    if isinstance(value, list):
        return [_replace_in_json(item, account, word, alias) for item in value]
    if isinstance(value, dict):
        return {
            _replace_in_json(key, account, word, alias): _replace_in_json(item, account, word, alias)
            for key, item in value.items()
        }
    return value
