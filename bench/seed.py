"""Seed a migrated database with the accounts, friendships and groups the load scenarios use.

Accounts are inserted in bulk (one password hash shared by all, computed with the server's own
argon2 settings, so signing in through the API verifies it for real). Friendships, direct
conversations and groups go through the services, exactly as the API makes them. Run in its own
process with the server's environment: `python -m bench seed --out seed.json ...`.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import insert, select

from app.models import Conversation, User, utcnow

PASSWORD = "bench-password-123"  # noqa: S105  (the benchmark accounts, on 127.0.0.1 only)


def usernames(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{index:05d}" for index in range(count)]


def _insert_users(names: list[str], password_hash: str) -> dict[str, int]:
    from app.extensions import db

    now = utcnow()
    rows = [
        {
            "username": name,
            "username_key": name.lower(),
            "nickname": name,
            "password_hash": password_hash,
            "signature": "",
            "is_bot": False,
            "created_at": now,
        }
        for name in names
    ]
    for start in range(0, len(rows), 1000):
        db.session.execute(insert(User), rows[start : start + 1000])
    db.session.commit()
    return dict(db.session.execute(select(User.username, User.id).where(User.username.in_(names))).all())


def _befriend(user_id: int, other_id: int) -> None:
    from app.social import services as social

    request, _ = social.send_friend_request(user_id, other_id, "")
    social.respond_to_request(other_id, request["id"], accept=True)


def _direct_conversation(user_id: int, other_id: int) -> int:
    from app.extensions import db

    low, high = sorted((user_id, other_id))
    return db.session.scalar(select(Conversation.id).where(Conversation.direct_key == f"{low}:{high}"))


def seed(pairs: int, group_sizes: list[int], idle: int) -> dict:
    """Create `pairs` friend pairs with their direct conversations, groups of the given sizes
    (nested: one owner, the first members of the largest group) and `idle` lone accounts."""
    from app.auth.services import hash_password
    from app.extensions import db
    from app.groups import services as groups

    password_hash = hash_password(PASSWORD)
    pair_names = usernames("p", 2 * pairs)
    group_names = usernames("g", max(group_sizes, default=0))
    idle_names = usernames("i", idle)
    ids = _insert_users(pair_names + group_names + idle_names, password_hash)
    plan: dict = {"password": PASSWORD, "pairs": [], "groups": {}, "idle": idle_names}
    for a, b in zip(pair_names[0::2], pair_names[1::2], strict=True):
        _befriend(ids[a], ids[b])
        plan["pairs"].append([a, b, _direct_conversation(ids[a], ids[b])])
    if group_names:
        owner = ids[group_names[0]]
        for name in group_names[1:]:
            _befriend(owner, ids[name])
        for size in group_sizes:
            members = group_names[:size]
            group = groups.create_group(owner, f"bench {size}", [ids[name] for name in members[1:]])
            plan["groups"][str(size)] = {"conversation_id": group.conversation_id, "members": members}
    db.session.remove()
    return plan


def main(out: Path, pairs: int, group_sizes: list[int], idle: int) -> None:
    from app import create_app

    app = create_app()
    with app.app_context():
        plan = seed(pairs, group_sizes, idle)
    out.write_text(json.dumps(plan))
