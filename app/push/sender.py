"""Sending Web Push: after a message commits, a push to each member's device that is not connected.

The send path only queues a small job, after the commit (`message_stored` and `message_forwarded`
with `realtime.on_commit`; the server API's system notices with `queue_notices`), in the process
that stored the message — so with several processes a message is pushed once. This process's
worker takes the jobs from a bounded queue (when it is full the oldest job is dropped, and
logged), decides who gets a push with a few queries per batch of jobs, and hands each push to a
small pool of greenlets. A push service that is slow or down holds
only those greenlets, never a send.

Who gets a push: every active member but the sender, on each device session with a subscription
that is live and has no connected socket (`presence().sids_of_device`), unless the member muted the
conversation (an @mention of them or @all still pushes) or blocked the sender. Each push is
encrypted for its subscription (RFC 8291, aes128gcm), signed with the server's VAPID key (RFC
8292), and carries `Topic: conversation-<id>`, so a push service holding an undelivered push of a
conversation replaces it with the newer one (RFC 8030) and a phone shows one notification per
conversation. A 404 or 410 answer removes the subscription; other failures (5xx, timeouts,
refused connections) are counted, and the tenth in a row removes it; a 429 (slow down) is neither.
Nothing is retried. A member who joined after the message (the queue may wait) gets no push of it.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from datetime import timedelta

import gevent
import gevent.pool
import requests
from flask import Flask, current_app
from pywebpush import WebPushException, webpush
from sqlalchemy import and_, delete, or_, select, update

from app import metrics, realtime
from app.auth.services import ban_clause
from app.chat.access import SendContext
from app.chat.actions.forward import message_forwarded
from app.chat.send import message_stored
from app.errors import ApiError
from app.extensions import db
from app.models import (
    Block,
    ConversationMember,
    DeviceSession,
    Group,
    Message,
    PushSubscription,
    User,
    utcnow,
)
from app.push import services
from app.voice_text import voice_length

log = logging.getLogger(__name__)

WORKER = "parley.push"
TTL_SECONDS = 24 * 3600  # a push service keeps an undelivered push this long
MAX_FAILURES = 10  # failures in a row that remove a subscription
BATCH = 100  # jobs planned together (one query for their subscriptions)
PREVIEW_CHARS = 100
# A subscription's last success is written at most this often (not on every push).
SUCCESS_STAMP = timedelta(minutes=1)
DROP_LOG_SECONDS = 10.0

WORDS = {
    "en": {
        "new": "New message",
        "img": "[Image]",
        "video": "[Video]",
        "audio": "[Voice]",
        "file": "[File]",
        "loc": "[Location]",
        "merged": "[Chat history]",
        "notices": "Notices",
    },
    "zh-CN": {
        "new": "新消息",
        "img": "[图片]",
        "video": "[视频]",
        "audio": "[语音]",
        "file": "[文件]",
        "loc": "[位置]",
        "merged": "[聊天记录]",
        "notices": "系统通知",
    },
}


@dataclass(frozen=True, slots=True)
class PushJob:
    """What a push needs of a message, taken before its rows expire."""

    message_id: int
    conversation_id: int
    seq: int
    sender_id: int
    sender_nickname: str
    direct: bool
    type: str
    body: dict
    mentions: frozenset[int]
    mention_all: bool
    # A system notice of the server API (app/notices.py): no sender, its text shown as it is.
    notice: bool = False


@dataclass(frozen=True, slots=True)
class Delivery:
    subscription_id: int
    endpoint: str
    p256dh: str
    auth: str
    payload: str
    topic: str
    urgency: str


# --- noticing messages -----------------------------------------------------------------------


def job_for(context: SendContext, message: Message) -> PushJob | None:
    if message.sender_id is None or message.type == "system":
        return None
    return PushJob(
        message_id=message.id,
        conversation_id=message.conversation_id,
        seq=message.seq,
        sender_id=message.sender_id,
        sender_nickname=context.sender.nickname,
        direct=context.peer is not None,
        type=message.type,
        body=message.body,
        mentions=frozenset(message.mentions or ()),
        mention_all=bool(message.mention_all),
    )


def _queue(context: SendContext, message: Message) -> None:
    """Queue the message's pushes for after the commit; never fails the send."""
    try:
        job = job_for(context, message)
        if job is not None:
            push_worker = worker(current_app._get_current_object())
            realtime.on_commit(lambda: push_worker.submit(job))
    except Exception:
        log.exception("could not queue the pushes of message %s", message.id)


def queue_notices(messages: list[dict], *, direct: bool = True) -> None:
    """Queue the pushes of system notices (message payloads) for after the commit: in users'
    notice conversations (`direct`), or one in a group's conversation."""
    jobs = [
        PushJob(
            message_id=message["id"],
            conversation_id=message["conversation_id"],
            seq=message["seq"],
            sender_id=0,  # nobody: every member is told
            sender_nickname="",
            direct=direct,
            type="txt",
            body={"msg": message["body"].get("text", "")},
            mentions=frozenset(),
            mention_all=False,
            notice=True,
        )
        for message in messages
    ]
    if jobs:
        push_worker = worker(current_app._get_current_object())
        realtime.on_commit(lambda: [push_worker.submit(job) for job in jobs])


@message_stored.connect
def _on_message_stored(context: SendContext, message: Message) -> None:
    _queue(context, message)


@message_forwarded.connect
def _on_message_forwarded(context: SendContext, messages: list[Message]) -> None:
    """A forward pushes its last copy only: the copies share a topic, the last one would win."""
    if messages:
        _queue(context, messages[-1])


# --- the worker ------------------------------------------------------------------------------


class _NoRedirects(requests.Session):
    """A push service answers a push; it never sends it elsewhere (a redirect to an inner
    address would get round the endpoint's check)."""

    def request(self, method, url, *args, **kwargs):
        kwargs["allow_redirects"] = False
        return super().request(method, url, *args, **kwargs)


def worker(app: Flask) -> PushWorker:
    push_worker = app.extensions.get(WORKER)
    if push_worker is None:
        push_worker = app.extensions[WORKER] = PushWorker(app)
    return push_worker


class PushWorker:
    """This process's push sender: a bounded queue of jobs, one greenlet planning them while there
    are any, and a pool of `PUSH_WORKERS` greenlets sending."""

    def __init__(self, app: Flask):
        self.app = app
        self.jobs: deque[PushJob] = deque()
        self.size = app.config["PUSH_QUEUE_SIZE"]
        self.pool = gevent.pool.Pool(app.config["PUSH_WORKERS"])
        self.planner: gevent.Greenlet | None = None
        self.session = _NoRedirects()
        self.dropped = 0  # jobs dropped from a full queue (the tests read it)
        # subscription id -> the newest push waiting for the one in flight to it (None: none).
        # One push at a time per subscription: a burst to one device is its first push and then
        # its latest, not fifty (they share a topic anyway), and one slow endpoint holds one sender.
        self.in_flight: dict[int, Delivery | None] = {}
        self.coalesced = 0  # pushes replaced by a newer one before they were sent (the tests read it)
        self._dropped_unlogged = 0
        self._drop_logged_at = 0.0

    def submit(self, job: PushJob) -> None:
        if len(self.jobs) >= self.size:
            self.jobs.popleft()
            self._dropped(1)
        self.jobs.append(job)
        if self.planner is None or self.planner.dead:
            self.planner = gevent.spawn(self._run)

    def _dropped(self, count: int) -> None:
        self.dropped += count
        self._dropped_unlogged += count
        now = time.monotonic()
        if now - self._drop_logged_at >= DROP_LOG_SECONDS:
            log.warning(
                "push queue full (%d jobs): dropped the oldest %d message(s)' pushes",
                self.size,
                self._dropped_unlogged,
            )
            self._drop_logged_at, self._dropped_unlogged = now, 0

    def idle(self) -> bool:
        """Nothing queued, planned or being sent (the tests wait for it)."""
        planning = self.planner is not None and not self.planner.dead
        busy = self.in_flight or self.pool.free_count() != self.pool.size
        return not self.jobs and not planning and not busy

    def _run(self) -> None:
        while self.jobs:
            batch = [self.jobs.popleft() for _ in range(min(BATCH, len(self.jobs)))]
            try:
                with self.app.app_context():
                    deliveries = plan(batch)
            except Exception:
                log.exception("could not plan the pushes of %d message(s)", len(batch))
                continue
            for delivery in deliveries:
                subscription = delivery.subscription_id
                if subscription in self.in_flight:
                    if self.in_flight[subscription] is not None:
                        self.coalesced += 1
                    self.in_flight[subscription] = delivery  # sent when the one in flight is done
                    continue
                self.in_flight[subscription] = None
                self.pool.spawn(self._deliver, delivery)  # waits while every sender is busy

    def _deliver(self, delivery: Delivery) -> None:
        """Push, then the newest push that came for the same subscription meanwhile, if any."""
        subscription = delivery.subscription_id
        try:
            while True:
                self._push(delivery)
                waiting = self.in_flight.get(subscription)
                if waiting is None:
                    break
                self.in_flight[subscription], delivery = None, waiting
        finally:
            self.in_flight.pop(subscription, None)

    def _push(self, delivery: Delivery) -> None:
        with self.app.app_context():
            try:
                outcome = send(delivery, self.session)
            except Exception:
                log.exception("push to subscription %s failed", delivery.subscription_id)
                outcome = "failed"
            if outcome == "failed":
                metrics.push_failed()
            try:
                record(delivery, outcome)
            except Exception:
                db.session.rollback()
                log.exception("could not record a push to subscription %s", delivery.subscription_id)


# --- who gets a push, and what it says -------------------------------------------------------


def plan(jobs: list[PushJob]) -> list[Delivery]:
    """The pushes the jobs' messages cause (see the module's docstring). One query when nobody
    in their conversations has a subscription, the common case."""
    now = utcnow()
    conversation_ids = {job.conversation_id for job in jobs}
    rows = db.session.execute(
        select(
            ConversationMember.conversation_id,
            ConversationMember.muted,
            ConversationMember.joined_seq,
            PushSubscription.id,
            PushSubscription.user_id,
            PushSubscription.device_session_id,
            PushSubscription.endpoint,
            PushSubscription.p256dh,
            PushSubscription.auth,
            User.notification_previews,
            User.locale,
        )
        .join(PushSubscription, PushSubscription.user_id == ConversationMember.user_id)
        .join(DeviceSession, DeviceSession.id == PushSubscription.device_session_id)
        .join(User, User.id == PushSubscription.user_id)
        .where(
            ConversationMember.conversation_id.in_(conversation_ids),
            ConversationMember.active.is_(True),
            DeviceSession.revoked_at.is_(None),
            DeviceSession.expires_at > now,
            ~ban_clause(User.id, now),
        )
    ).all()
    if not rows:
        db.session.rollback()
        return []
    by_conversation: dict[int, list] = {}
    for row in rows:
        by_conversation.setdefault(row.conversation_id, []).append(row)
    jobs = [job for job in jobs if job.conversation_id in by_conversation]
    recalled = set(
        db.session.scalars(
            select(Message.id).where(
                Message.id.in_([job.message_id for job in jobs]), Message.recalled_at.is_not(None)
            )
        )
    )
    group_ids = {job.conversation_id for job in jobs if not job.direct}
    names = dict(
        db.session.execute(
            select(Group.conversation_id, Group.name).where(Group.conversation_id.in_(group_ids))
        ).all()
        if group_ids
        else []
    )
    blocked = set(
        db.session.execute(
            select(Block.user_id, Block.blocked_user_id).where(
                Block.user_id.in_({row.user_id for row in rows}),
                Block.blocked_user_id.in_({job.sender_id for job in jobs}),
            )
        ).all()
    )
    db.session.rollback()  # hold no connection while pushing
    store = realtime.presence()
    connected: dict[int, bool] = {}
    deliveries = []
    for job in jobs:
        if job.message_id in recalled:
            continue
        for row in by_conversation[job.conversation_id]:
            if row.user_id == job.sender_id or (row.user_id, job.sender_id) in blocked:
                continue
            if job.seq <= row.joined_seq:
                continue  # joined after the message (a queue that waited): not theirs to see
            mentioned = job.mention_all or row.user_id in job.mentions
            if row.muted and not mentioned:
                continue
            device_id = row.device_session_id
            if device_id not in connected:
                connected[device_id] = bool(store.sids_of_device(device_id))
            if connected[device_id]:
                continue
            content = payload(job, names.get(job.conversation_id), row.notification_previews, row.locale)
            deliveries.append(
                Delivery(
                    subscription_id=row.id,
                    endpoint=row.endpoint,
                    p256dh=row.p256dh,
                    auth=row.auth,
                    payload=json.dumps(content, ensure_ascii=False),
                    topic=content["tag"],
                    urgency="high" if mentioned else "normal",
                )
            )
    return deliveries


def preview(job: PushJob, words: dict[str, str], language: str = "en") -> str:
    """The message as one short line: its text, or what it carries (a voice message its length,
    app/voice_text.py)."""
    body = job.body
    if job.type == "txt":
        text = " ".join(str(body.get("msg", "")).split())
        return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"
    label = words.get(job.type, words["new"])
    if job.type == "audio":
        return f"{label} {voice_length(body.get('duration'), language)}"
    name = body.get("name") if job.type == "file" else body.get("title")
    return f"{label} {name}"[: PREVIEW_CHARS + 20] if name else label


def payload(job: PushJob, group_name: str | None, previews: bool, locale: str | None) -> dict:
    """What the service worker shows: `title` and `body`, the `tag` that folds a conversation's
    notifications into one, and the `url` a click opens. Without previews: "Parley", "New message"."""
    language = locale if locale in WORDS else "en"
    words = WORDS[language]
    line = preview(job, words, language) if previews else ""
    if not previews:
        title, text = "Parley", words["new"]
    elif job.notice:
        title, text = words["notices"] if job.direct else group_name or "Parley", line
    elif job.direct:
        title, text = job.sender_nickname, line
    else:
        title, text = group_name or "Parley", f"{job.sender_nickname}: {line}"
    return {
        "conversation_id": job.conversation_id,
        "title": title,
        "body": text,
        "tag": f"conversation-{job.conversation_id}",
        "url": f"/#/chat/{job.conversation_id}",
    }


# --- one push --------------------------------------------------------------------------------


def send(delivery: Delivery, session: requests.Session) -> str:
    """Push one payload: "ok", "gone" (404 or 410: the subscription expired), "limited" (429) or
    "failed"."""
    config = current_app.config
    timeout = config["PUSH_TIMEOUT_SECONDS"]
    # `timeout` bounds each connect and read; this bounds the whole push (a slow name server, a
    # slow trickle).
    deadline = gevent.Timeout(2 * timeout)
    try:
        with deadline:
            try:
                services.check_endpoint(delivery.endpoint)  # its name may resolve elsewhere by now
            except ApiError:
                log.warning(
                    "push to subscription %s refused: its endpoint is not public", delivery.subscription_id
                )
                return "failed"
            webpush(
                subscription_info={
                    "endpoint": delivery.endpoint,
                    "keys": {"p256dh": delivery.p256dh, "auth": delivery.auth},
                },
                data=delivery.payload,
                vapid_private_key=services.vapid(),
                vapid_claims={"sub": config["VAPID_SUBJECT"]},
                ttl=TTL_SECONDS,
                headers={"Topic": delivery.topic, "Urgency": delivery.urgency},
                timeout=timeout,
                requests_session=session,
            )
    except WebPushException as error:
        status = error.response.status_code if error.response is not None else None
        if status in (404, 410):
            return "gone"
        if status == 429:
            # The push service asks to slow down: the subscription is fine (counting this as a
            # failure would remove it after a burst of messages).
            log.info("push to subscription %s was rate limited", delivery.subscription_id)
            return "limited"
        log.info("push to subscription %s answered %s", delivery.subscription_id, status)
        return "failed"
    except gevent.Timeout as error:
        if error is not deadline:
            raise
        log.info("push to subscription %s timed out", delivery.subscription_id)
        return "failed"
    except requests.RequestException as error:
        log.info("push to subscription %s failed: %s", delivery.subscription_id, type(error).__name__)
        return "failed"
    return "ok"


def record(delivery: Delivery, outcome: str) -> None:
    """Keep what a push taught: a gone subscription is removed, a failure counted (the tenth in a
    row removes it), a success clears the count. Only the subscription pushed to is touched: one
    the device made meanwhile (another endpoint) is not."""
    same = and_(
        PushSubscription.id == delivery.subscription_id, PushSubscription.endpoint == delivery.endpoint
    )
    if outcome == "gone":
        db.session.execute(delete(PushSubscription).where(same))
    elif outcome == "failed":
        db.session.execute(
            update(PushSubscription).where(same).values(failures=PushSubscription.failures + 1)
        )
        db.session.execute(delete(PushSubscription).where(same, PushSubscription.failures >= MAX_FAILURES))
    elif outcome == "limited":
        return  # neither a failure nor a success
    else:
        now = utcnow()
        db.session.execute(
            update(PushSubscription)
            .where(
                same,
                or_(
                    PushSubscription.failures > 0,
                    PushSubscription.last_success_at.is_(None),
                    PushSubscription.last_success_at < now - SUCCESS_STAMP,
                ),
            )
            .values(failures=0, last_success_at=now)
        )
    db.session.commit()
