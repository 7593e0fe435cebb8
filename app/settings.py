"""Deployment settings changed in the console (table `settings`, key → JSON value): each key has a
default here, used while it has no row.

`retention_days` is the deployment's retention policy (app/retention.py): 0 keeps messages
forever (the default), N ≥ 1 deletes messages and their media older than N days. Direct and
notice conversations follow it; a group follows its own `groups.retention_days` when that is set
(0: keep forever even while the deployment purges). Only accounts with the console right
`settings` (or the server API, for a group) change either; every change is audited.
"""

from __future__ import annotations

from sqlalchemy import select

from app.errors import ApiError, not_found
from app.extensions import db
from app.models import Group, Setting, utcnow
from app.moderation.rights import require
from app.moderation.services import audit

RETENTION_MAX_DAYS = 36500
DEFAULTS: dict[str, object] = {"retention_days": 0}


def _unknown() -> ApiError:
    return ApiError("invalid_input", "There is no such setting.", 400, {"key": "not a setting"})


def _retention(value: object, field: str) -> int:
    """A retention in days: a whole number from 0 to 36500 (not a boolean, not a string)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= RETENTION_MAX_DAYS:
        raise ApiError(
            "invalid_input",
            "Retention is a whole number of days from 0 to 36500.",
            400,
            {field: "a whole number of days, 0 to 36500"},
        )
    return value


VALIDATORS = {"retention_days": _retention}


def get(key: str) -> object:
    """The setting's value: its row's, else its default. An unknown key is a programming error."""
    default = DEFAULTS[key]
    value = db.session.scalar(select(Setting.value).where(Setting.key == key))
    return default if value is None else value


def all_values() -> dict[str, object]:
    """Every setting, as in force now (one query)."""
    stored = dict(db.session.execute(select(Setting.key, Setting.value)).all())
    return {key: stored.get(key, default) for key, default in DEFAULTS.items()}


def set_value(actor_id: int | None, key: str, value: object) -> object:
    """Change a deployment setting: the actor needs the right `settings`; a bad key or value is
    `invalid_input` with the field named, and nothing is written. Audited, committed."""
    require(actor_id, "settings")
    if key not in DEFAULTS:
        raise _unknown()
    value = VALIDATORS[key](value, key)
    old = get(key)
    row = db.session.get(Setting, key)
    if row is None:
        row = Setting(key=key)
        db.session.add(row)
    row.value = value
    row.updated_at = utcnow()
    row.updated_by_id = actor_id
    audit(actor_id, "setting_changed", "setting", None, key=key, old=old, new=value)
    db.session.commit()
    return value


def group_retention(group_id: int) -> int | None:
    """The group's own retention (None: it follows the deployment)."""
    return db.session.scalar(select(Group.retention_days).where(Group.id == group_id))


def set_group_retention(
    actor_id: int | None, group_id: int, days: int | None, *, api_key_id: int | None = None
) -> int | None:
    """Set a group's own retention: None follows the deployment, 0 keeps its messages forever,
    N ≥ 1 purges them after N days. From the console (right `settings`) or the server API (its
    route checked the key's scope: `api_key_id`); never by the group's members. Audited."""
    details: dict = {}
    if api_key_id is None:
        require(actor_id, "settings")
    else:
        details["api_key"] = api_key_id
    if days is not None:
        days = _retention(days, "retention_days")
    group = db.session.get(Group, group_id)
    if group is None:
        raise not_found("group")
    old = group.retention_days
    group.retention_days = days
    audit(actor_id, "group_retention", "group", group_id, old=old, new=days, **details)
    db.session.commit()
    return days


def effective_retention(group: Group | None) -> int:
    """Days after which a conversation's messages go (0: never): a group's own value when set,
    else the deployment's."""
    if group is not None and group.retention_days is not None:
        return group.retention_days
    return int(get("retention_days"))
