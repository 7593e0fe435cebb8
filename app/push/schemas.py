"""Request bodies of the push routes (app/push/routes.py). Their shape only: the endpoint and the
keys are checked by app/push/services.py, which answers `invalid_subscription`."""

from __future__ import annotations

from pydantic import Field

from app.validation import Payload


class SubscriptionKeys(Payload):
    p256dh: str = Field(max_length=200)
    auth: str = Field(max_length=100)


class SubscriptionIn(Payload):
    """What the browser's `PushSubscription.toJSON()` gives; its `expirationTime` may come too."""

    endpoint: str = Field(max_length=4000)  # longer than any endpoint kept (services)
    keys: SubscriptionKeys
    expirationTime: int | float | None = None  # noqa: N815 (the browser's name; not used)
