"""Configuring webhooks (the admin console calls these): each change is audited and drops this
process's copy of the hook list at once. A hook is disabled, never deleted, so its delivery log
and the rows still queued for it stay.

Changes from the console take the `manage_webhooks` right (app/moderation/rights.py; 403 and
nothing done without it); `admin_id` None is a change made on the server itself (a shell).

A hook's URL may point anywhere the server can reach (an inner address too): only administrators
set it, and only http(s) without user:password@ is accepted (a receiver's credentials go in its
secret, or a query token). The audit log records the URL without its query (app/webhooks/signing.py
`shown_url`)."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from sqlalchemy import or_, update

from app.errors import ApiError, not_found
from app.extensions import db
from app.locales import _l
from app.models import AuditLog, utcnow
from app.models.integrations import Webhook, WebhookDelivery
from app.moderation import rights
from app.realtime import on_commit
from app.webhooks import registry, signing

TIMEOUT_MS = (100, 10_000)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def _usable_url(url: str) -> bool:
    """http(s), a host, no user:password@ (it would be logged and shown like the rest)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a malformed port)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and "@" not in parts.netloc
        and len(url) <= 500
    )


def _check(name: str, url: str, events: list[str], timeout_ms: int) -> list[str]:
    fields = {}
    if not name.strip() or len(name) > 100:
        fields["name"] = "1 to 100 characters"
    if not _usable_url(url):
        fields["url"] = "an http or https URL without user:password@, of at most 500 characters"
    unknown = [event for event in events if event not in registry.EVENTS]
    if unknown or not events:
        fields["events"] = _l("at least one of %(events)s", events=", ".join(registry.EVENTS))
    if not TIMEOUT_MS[0] <= timeout_ms <= TIMEOUT_MS[1]:
        fields["timeout_ms"] = _l("%(min)s to %(max)s", min=TIMEOUT_MS[0], max=TIMEOUT_MS[1])
    if fields:
        raise ApiError("invalid_webhook", "The webhook was not saved.", 400, fields)
    return [event for event in registry.EVENTS if event in events]


def _require_manager(admin_id: int | None) -> None:
    if admin_id is not None:
        rights.require(admin_id, "manage_webhooks")


def _audit(admin_id: int | None, action: str, hook: Webhook, **details) -> None:
    db.session.add(
        AuditLog(
            admin_id=admin_id,
            action=action,
            target_type="webhook",
            target_id=hook.id,
            details={"name": hook.name, "url": signing.shown_url(hook.url), **details},
        )
    )


def create_hook(
    admin_id: int | None,
    name: str,
    url: str,
    events: list[str],
    *,
    secret: str | None = None,
    enabled: bool = True,
    timeout_ms: int = 2000,
    fail_open: bool = True,
) -> Webhook:
    """A new webhook; its secret is generated when none is given. Commits."""
    _require_manager(admin_id)
    events = _check(name, url, events, timeout_ms)
    hook = Webhook(
        name=name.strip(),
        url=url,
        secret=secret or new_secret(),
        events=events,
        enabled=enabled,
        timeout_ms=timeout_ms,
        fail_open=fail_open,
    )
    db.session.add(hook)
    db.session.flush()
    _audit(admin_id, "webhook_create", hook, events=events, enabled=enabled)
    db.session.commit()
    registry.clear()
    return hook


def update_hook(admin_id: int | None, hook_id: int, **changes) -> Webhook:
    """Change a webhook (name, url, secret, events, enabled, timeout_ms, fail_open). Commits."""
    _require_manager(admin_id)
    hook = db.session.get(Webhook, hook_id)
    if hook is None:
        raise not_found("webhook")
    merged = {
        "name": hook.name,
        "url": hook.url,
        "events": hook.events,
        "timeout_ms": hook.timeout_ms,
        **{key: value for key, value in changes.items() if value is not None},
    }
    events = _check(merged["name"], merged["url"], merged["events"], merged["timeout_ms"])
    for key in ("name", "url", "timeout_ms", "enabled", "fail_open"):
        if changes.get(key) is not None:
            setattr(hook, key, changes[key].strip() if key == "name" else changes[key])
    if changes.get("secret"):
        hook.secret = changes["secret"]
    hook.events = events
    hook.updated_at = utcnow()
    shown = {key: value for key, value in changes.items() if key != "secret" and value is not None}
    if "url" in shown:
        shown["url"] = signing.shown_url(shown["url"])
    _audit(admin_id, "webhook_update", hook, **shown, secret_changed=bool(changes.get("secret")))
    db.session.commit()
    registry.clear()
    return hook


def retry_delivery(admin_id: int | None, delivery_id: int) -> None:
    """Send a pending or failed delivery at the next round: a failed one gets one more attempt
    (its retry time, counted from the event, is over), a pending one goes now.

    Refused while a worker holds the row (its lease has not ended): clearing the lease would let
    a second worker claim and send it again while the first is still sending. The check and the
    change are one statement, so a claim made in between is not overwritten either."""
    _require_manager(admin_id)
    row = db.session.get(WebhookDelivery, delivery_id)
    if row is None:
        raise not_found("delivery")
    if row.status == "delivered":
        raise ApiError("already_delivered", "This delivery was delivered already.", 409)
    now = utcnow()
    changed = db.session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status != "delivered",
            or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
        )
        .values(status="pending", next_attempt_at=now, lease_until=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not changed:
        db.session.rollback()
        if row.status == "delivered":  # read again: delivered meanwhile
            raise ApiError("already_delivered", "This delivery was delivered already.", 409)
        raise ApiError(
            "delivery_in_progress",
            "This delivery is being sent right now; retry it once this attempt has ended.",
            409,
        )
    db.session.add(
        AuditLog(
            admin_id=admin_id,
            action="webhook_retry",
            target_type="webhook",
            target_id=row.webhook_id,
            details={"delivery_id": delivery_id, "event_id": row.event_id, "event": row.event},
        )
    )
    on_commit(_wake)
    db.session.commit()


def _wake() -> None:
    from app.webhooks import deliver

    deliver.wake()
