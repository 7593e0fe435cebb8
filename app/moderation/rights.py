"""Console roles and their rights: who may do what in the admin console and the moderation
services.

Every console service asks `require(actor_id, right)` before it acts (the console's views ask
again, to show and allow only what a role may do; anyone with a role sees the console's
dashboard and its users and groups). The built-in roles are rows of `admin_roles` made by
migration 0012 and cannot be changed; custom roles are any set of RIGHTS
(app/moderation/roles.py). `owner` has every right and is the only role that may give or take
`owner`; the last owner cannot lose the role. Which service needs which right: docs/ARCHITECTURE.md,
"Console roles and rights".
"""

from __future__ import annotations

from sqlalchemy import select

from app.errors import ApiError
from app.extensions import db
from app.models import AdminRole, User

RIGHTS = (
    "ban",
    "mute",
    "recall",
    "dissolve",
    "view_messages",
    "view_audit",
    "manage_roles",
    "manage_api_keys",
    "manage_webhooks",
    "manage_words",
    "bot_switch",
    "settings",
)

OWNER = "owner"
# The built-in roles, as migration 0012 writes them (a migration is a snapshot: it has its own copy).
BUILTIN = {
    OWNER: RIGHTS,
    "admin": tuple(right for right in RIGHTS if right != "manage_roles"),
    "moderator": ("ban", "mute", "recall", "dissolve", "view_messages"),
    "support": ("view_messages", "view_audit"),
}


def role_named(name: str) -> AdminRole:
    role = db.session.scalar(select(AdminRole).where(AdminRole.name == name))
    if role is None:
        raise ApiError("not_found", "No such role.", 404)
    return role


def rights_of(user: User | None) -> frozenset[str]:
    """The rights an account holds now (none without a role, or once deleted)."""
    if user is None or user.admin_role_id is None or user.deleted_at is not None:
        return frozenset()
    role = db.session.get(AdminRole, user.admin_role_id)
    return frozenset(role.rights or ()) if role is not None else frozenset()


def is_owner(user: User | None) -> bool:
    """Whether the account holds the `owner` role (and is not deleted)."""
    if user is None or user.admin_role_id is None or user.deleted_at is not None:
        return False
    role = db.session.get(AdminRole, user.admin_role_id)
    return role is not None and role.name == OWNER


def has(user: User | None, right: str) -> bool:
    assert right in RIGHTS, right
    return right in rights_of(user)


def require(actor_id: int | None, right: str) -> User:
    """The acting account, if it holds `right`; else 403 `forbidden` (nothing is done)."""
    actor = db.session.get(User, actor_id) if actor_id is not None else None
    if not has(actor, right):
        raise ApiError("forbidden", "You do not have the right to do that.", 403)
    return actor
