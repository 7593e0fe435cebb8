"""The JSON shapes of Parley's objects, shared by REST routes and socket events."""

from __future__ import annotations

from datetime import datetime

from app.models import DeviceSession, User


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def user_public(user: User) -> dict:
    return {
        "id": user.id,
        "username": user.username,
        "nickname": user.nickname,
        "avatar_url": user.avatar_url,
        "signature": user.signature,
        "is_bot": user.is_bot,
    }


def user_self(user: User) -> dict:
    return {
        **user_public(user),
        "is_admin": user.is_admin,
        "locale": user.locale,
        "has_password": user.password_hash is not None,
        "created_at": iso(user.created_at),
    }


def device(session: DeviceSession, current_id: int | None) -> dict:
    return {
        "id": session.id,
        "name": session.name,
        "ip": session.ip,
        "method": session.method,
        "created_at": iso(session.created_at),
        "last_seen_at": iso(session.last_seen_at),
        "current": session.id == current_id,
    }
