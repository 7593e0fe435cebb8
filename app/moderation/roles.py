"""Console roles: making, changing and deleting custom roles, and giving an account its role.
Each takes the `manage_roles` right (app/moderation/rights.py), commits, and writes an audit row
(`role_create`, `role_update`, `role_delete`, `set_role`) with the old and new names or rights.

The rules:
- The built-in roles (owner, admin, moderator, support) cannot be changed or deleted
  (`builtin_role`); a role someone holds cannot be deleted (`role_in_use`).
- A role is named 1 to 64 characters, unique whatever the letter case (`role_name_taken`); its
  rights are any set of RIGHTS. Who is not an owner cannot make or change a role with rights
  they do not hold themselves, nor change the role they hold (`forbidden`).
- Only an owner gives or takes `owner` (`owner_only`); the last owner keeps it (`last_owner`).
- Nobody changes their own role (`own_role`), except an owner stepping down while another
  owner remains. The robot and deleted accounts hold no role (`no_role_for_account`).

Every change of who holds which role locks the owner role's row first: changes happen one after
the other, so two owners demoting each other at once cannot leave Parley without one, and a role
cannot be deleted while it is being given.
"""

from __future__ import annotations

from sqlalchemy import func, select

from app.errors import ApiError, not_found
from app.extensions import db
from app.locales import _l
from app.models import AdminRole, AuditLog, User
from app.moderation import rights
from app.validation import UNSTORABLE

MAX_NAME = 64


def _audit(admin_id: int, action: str, target_type: str, target_id: int, **details) -> None:
    db.session.add(
        AuditLog(
            admin_id=admin_id, action=action, target_type=target_type, target_id=target_id, details=details
        )
    )


def _lock_roles() -> None:
    """Serialise changes of who holds which role (see the module's docstring)."""
    db.session.execute(select(AdminRole.id).where(AdminRole.name == rights.OWNER).with_for_update())


def _role(role_id: int, *, lock: bool = False) -> AdminRole:
    query = select(AdminRole).where(AdminRole.id == role_id)
    role = db.session.scalar(query.with_for_update() if lock else query)
    if role is None:
        raise ApiError("not_found", "No such role.", 404)
    return role


def _custom(role: AdminRole) -> AdminRole:
    if role.builtin:
        raise ApiError("builtin_role", "Built-in roles cannot be changed or deleted.", 409)
    return role


def _checked(name: str, chosen: list[str], role_id: int | None = None) -> tuple[str, list[str]]:
    """The role's name, stripped, and its rights in RIGHTS' order; or `invalid_input` naming the
    bad fields, or `role_name_taken`."""
    name = (name or "").strip()
    fields = {}
    if not name or len(name) > MAX_NAME or UNSTORABLE.search(name):
        fields["name"] = _l("1 to %(max)s characters", max=MAX_NAME)
    if not isinstance(chosen, list | tuple) or any(right not in rights.RIGHTS for right in chosen):
        fields["rights"] = _l("one of %(values)s", values=", ".join(rights.RIGHTS))
    if fields:
        raise ApiError("invalid_input", "Some fields are invalid.", 400, fields)
    same_name = select(AdminRole.id).where(func.lower(AdminRole.name) == name.lower())
    if role_id is not None:
        same_name = same_name.where(AdminRole.id != role_id)
    if db.session.scalar(same_name.limit(1)) is not None:
        raise ApiError(
            "role_name_taken", "A role of that name exists already.", 409, {"name": "already taken"}
        )
    return name, [right for right in rights.RIGHTS if right in chosen]


def _within_own_rights(actor: User, granted: list[str]) -> None:
    """Who is not an owner gives or takes no right they do not hold themselves (else a role
    manager could lift a role, or an account, above their own)."""
    if not rights.is_owner(actor) and not set(granted) <= rights.rights_of(actor):
        raise ApiError("forbidden", "You cannot give or take rights you do not hold.", 403)


def create_role(admin_id: int, name: str, chosen: list[str]) -> AdminRole:
    """A custom role with the `chosen` rights (any of RIGHTS, none included)."""
    actor = rights.require(admin_id, "manage_roles")
    name, granted = _checked(name, chosen)
    _within_own_rights(actor, granted)
    role = AdminRole(name=name, rights=granted, builtin=False)
    db.session.add(role)
    db.session.flush()
    _audit(admin_id, "role_create", "role", role.id, name=name, rights=granted)
    db.session.commit()
    return role


def update_role(admin_id: int, role_id: int, name: str, chosen: list[str]) -> AdminRole:
    """Rename a custom role or change its rights; its holders have the new rights at once."""
    actor = rights.require(admin_id, "manage_roles")
    role = _custom(_role(role_id, lock=True))
    if actor.admin_role_id == role.id and not rights.is_owner(actor):
        raise ApiError("own_role", "You cannot change your own role.", 403)
    name, granted = _checked(name, chosen, role.id)
    _within_own_rights(actor, granted)
    old = {"name": role.name, "rights": list(role.rights or [])}
    if old == {"name": name, "rights": granted}:
        db.session.commit()  # nothing to write: let the row's lock go
        return role
    role.name, role.rights = name, granted
    _audit(admin_id, "role_update", "role", role.id, old=old, new={"name": name, "rights": granted})
    db.session.commit()
    return role


def delete_role(admin_id: int, role_id: int) -> None:
    """Delete a custom role nobody holds."""
    rights.require(admin_id, "manage_roles")
    _lock_roles()
    role = _custom(_role(role_id, lock=True))
    holders = db.session.scalar(select(func.count(User.id)).where(User.admin_role_id == role.id))
    if holders:
        raise ApiError(
            "role_in_use",
            _l("Accounts hold this role (%(count)s): give them another one first.", count=holders),
            409,
        )
    _audit(admin_id, "role_delete", "role", role.id, name=role.name, rights=list(role.rights or []))
    db.session.delete(role)
    db.session.commit()


def set_user_role(admin_id: int, user_id: int, role_id: int | None) -> None:
    """Give the account the role `role_id`, or none (None). Nothing changes when it holds it."""
    _lock_roles()
    if admin_id is not None:  # as the account is now that role changes wait for this one
        db.session.get(User, admin_id, populate_existing=True)
    actor = rights.require(admin_id, "manage_roles")
    user = db.session.get(User, user_id, populate_existing=True, with_for_update=True)
    if user is None:
        raise not_found("user")
    role = _role(role_id, lock=True) if role_id is not None else None
    old = db.session.get(AdminRole, user.admin_role_id) if user.admin_role_id is not None else None
    if old == role:
        db.session.commit()  # nothing to write: let the locks go
        return
    if role is not None and (user.is_bot or user.deleted_at is not None):
        raise ApiError(
            "no_role_for_account", "The robot and deleted accounts cannot hold a console role.", 409
        )
    if rights.OWNER in (old and old.name, role and role.name) and not rights.is_owner(actor):
        raise ApiError("owner_only", "Only an owner may give or take the owner role.", 403)
    stepping_down = old is not None and old.name == rights.OWNER
    if stepping_down and _owners() <= 1:
        raise ApiError("last_owner", "Parley must keep at least one owner.", 409)
    if user.id == actor.id and not stepping_down:
        raise ApiError("own_role", "You cannot change your own role.", 403)
    _within_own_rights(actor, [*(old.rights if old else []), *(role.rights if role else [])])
    user.admin_role_id = role.id if role is not None else None
    _audit(
        admin_id,
        "set_role",
        "user",
        user.id,
        old=old.name if old is not None else None,
        new=role.name if role is not None else None,
    )
    db.session.commit()


def _owners() -> int:
    owner = rights.role_named(rights.OWNER)
    return db.session.scalar(
        select(func.count(User.id)).where(User.admin_role_id == owner.id, User.deleted_at.is_(None))
    )


def holders() -> dict[int, int]:
    """How many accounts hold each role (for the console's list): one query."""
    rows = db.session.execute(
        select(User.admin_role_id, func.count(User.id))
        .where(User.admin_role_id.is_not(None))
        .group_by(User.admin_role_id)
    )
    return {role_id: count for role_id, count in rows}


def all_roles() -> list[AdminRole]:
    """Built-in roles first (owner, admin, moderator, support), then custom ones by name."""
    builtin = list(rights.BUILTIN)
    rows = list(db.session.scalars(select(AdminRole)))
    return sorted(
        rows,
        key=lambda role: (0, builtin.index(role.name), "") if role.builtin else (1, 0, role.name.lower()),
    )
