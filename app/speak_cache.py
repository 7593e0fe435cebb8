"""The right to speak, kept in memory per process: for each (user, conversation), the facts
`check_can_speak` decides from (membership, role, mutes, the group's state, friendship and
blocks with a direct peer), so a send does not re-read them from the database.

Who drops what: every service that changes one of those facts calls `drop_user`,
`drop_conversation` or `drop_pair`. A drop applies in this process at once, again after the
transaction commits (a send that read the old rows in between must not keep them), and, with
REDIS_URL, in every other process: it is published after commit on the pub/sub channel
`<REDIS_NAMESPACE>:speak`, which one greenlet per process listens to. Time needs no drop: an
entry holds the end of a mute, and the check compares it with the clock when the entry is used.

Why a drop cannot be lost to a race: an entry is stored with the generations of its user and
conversation read *before* its rows were loaded, and a drop bumps those generations, so an
entry loaded across a drop is never stored. With Redis, entries are used and stored only while
this process is subscribed; whenever the subscription (re)starts the cache is emptied, since
drops published meanwhile never reached it. No entry is used longer than `MAX_AGE_SECONDS`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from flask import current_app

from app import realtime
from app.extensions import socketio

log = logging.getLogger(__name__)

# However quiet the channel, an entry is reloaded after this long: a bound on any drop lost
# to a fault nobody noticed (e.g. a publish that failed after its commit).
MAX_AGE_SECONDS = 60.0
# How long the listener waits for a message before looking at its connection again.
LISTEN_POLL_SECONDS = 1.0
# The listener's pause before it subscribes again after losing Redis.
RESUBSCRIBE_SECONDS = 1.0

Stamp = tuple[int, int, int]


class SpeakCache:
    """A bounded LRU map (user id, conversation id) → value, invalidated by generations.

    `stamp` before loading, `put` with that stamp after: a drop in between makes `put` a no-op.
    Not thread-safe: one process serves its greenlets from one thread."""

    def __init__(self, capacity: int = 20_000, max_age: float = MAX_AGE_SECONDS, clock=time.monotonic):
        self.capacity = capacity
        self.max_age = max_age
        self._clock = clock
        self._entries: OrderedDict[tuple[int, int], tuple[Stamp, float, object]] = OrderedDict()
        self._epoch = 0
        self._users: dict[int, int] = {}
        self._conversations: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def stamp(self, user_id: int, conversation_id: int) -> Stamp:
        return (self._epoch, self._users.get(user_id, 0), self._conversations.get(conversation_id, 0))

    def get(self, user_id: int, conversation_id: int):
        key = (user_id, conversation_id)
        entry = self._entries.get(key)
        if entry is None:
            return None
        stamp, loaded_at, value = entry
        if stamp != self.stamp(user_id, conversation_id) or self._clock() - loaded_at > self.max_age:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, user_id: int, conversation_id: int, stamp: Stamp, value) -> None:
        if stamp != self.stamp(user_id, conversation_id) or self.capacity <= 0:
            return  # dropped while it was being loaded: the value may predate the change
        key = (user_id, conversation_id)
        self._entries[key] = (stamp, self._clock(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def drop(self, users: Iterable[int] = (), conversations: Iterable[int] = ()) -> None:
        """Invalidate every entry of these users and of these conversations."""
        for user_id in users:
            self._users[user_id] = self._users.get(user_id, 0) + 1
        for conversation_id in conversations:
            self._conversations[conversation_id] = self._conversations.get(conversation_id, 0) + 1
        if len(self._users) + len(self._conversations) > max(self.capacity, 1024):
            self.clear()  # keeps the generation maps bounded too

    def clear(self) -> None:
        self._entries.clear()
        self._users.clear()
        self._conversations.clear()
        self._epoch += 1


# One cache per process, as the processes' drops are: every application in it shares it.
_cache = SpeakCache()


# --- reading, for the send path --------------------------------------------------------------


def get(user_id: int, conversation_id: int) -> tuple[object | None, Stamp | None]:
    """The cached value, or None and the stamp to `put` the loaded value with (None: the cache
    is off, or cannot be trusted now because this process is not hearing other processes' drops)."""
    app = current_app
    if not app.config["SPEAK_CACHE"]:
        return None, None
    bus = _bus(app)
    if bus is not None and not bus.live:
        bus.start()
        return None, None
    value = _cache.get(user_id, conversation_id)
    if value is not None:
        return value, None
    return None, _cache.stamp(user_id, conversation_id)


def generation(user_id: int, conversation_id: int) -> Stamp:
    """Changes whenever a service drops this (user, conversation)'s right to speak, in this
    process or, heard through Redis, in another — whether or not the cache is on."""
    return _cache.stamp(user_id, conversation_id)


def put(user_id: int, conversation_id: int, stamp: Stamp | None, value) -> None:
    if stamp is None:
        return
    _cache.capacity = current_app.config["SPEAK_CACHE_SIZE"]
    _cache.put(user_id, conversation_id, stamp, value)


# --- dropping, for the services that change the right to speak -------------------------------


def drop_user(user_id: int) -> None:
    """Everything about this user changed (a ban, a site mute, the profile a send carries)."""
    _drop(users=[user_id])


def drop_conversation(conversation_id: int) -> None:
    """Something every member's right to speak here depends on changed (membership, roles,
    a member's mute, the group's mute or dissolution)."""
    _drop(conversations=[conversation_id])


def drop_pair(user_id: int, other_id: int) -> None:
    """The two users' friendship or block changed (their direct conversation's right to speak)."""
    _drop(users=[user_id, other_id])


def clear() -> None:
    """Forget every entry of this process."""
    _cache.clear()


def _drop(users: Iterable[int] = (), conversations: Iterable[int] = ()) -> None:
    users, conversations = list(users), list(conversations)
    _cache.drop(users, conversations)
    bus = _bus(current_app)

    def after_commit():
        _cache.drop(users, conversations)
        if bus is not None:
            bus.publish(users, conversations)

    realtime.on_commit(after_commit)


def apply_message(data: bytes | str) -> bool:
    """Apply a drop published by a process; False for anything that is not one."""
    try:
        message = json.loads(data)
        users = [int(user_id) for user_id in message.get("users", [])]
        conversations = [int(conversation_id) for conversation_id in message.get("conversations", [])]
    except (ValueError, TypeError, AttributeError):
        log.warning("ignoring a malformed right-to-speak drop: %r", data[:200])
        return False
    _cache.drop(users, conversations)
    return True


# --- between processes -----------------------------------------------------------------------


def _listening_possible() -> bool:
    """The listener blocks on its socket: only a gevent-patched process (the server) may run it.
    Elsewhere (the CLI, an unpatched test process) an application on Redis simply never caches."""
    if socketio.server is None or socketio.server.async_mode not in ("gevent", "gevent_uwsgi"):
        return False
    from gevent import monkey

    return monkey.is_module_patched("socket")


class SpeakBus:
    """Drops between processes: published on `channel`, applied by one listener per process."""

    def __init__(self, url: str, channel: str, spawn: Callable, sleep: Callable):
        import redis

        self.redis = redis.Redis.from_url(url, health_check_interval=10, socket_connect_timeout=5)
        self.channel = channel
        self._spawn = spawn
        self._sleep = sleep
        self._pid: int | None = None
        # The process whose listener is subscribed now (a forked child inherits none).
        self._live_pid: int | None = None

    @property
    def live(self) -> bool:
        """Subscribed in this process: only then may it use and store entries."""
        return self._live_pid == os.getpid()

    def publish(self, users: list[int], conversations: list[int]) -> None:
        try:
            self.redis.publish(self.channel, json.dumps({"users": users, "conversations": conversations}))
        except Exception:
            # The others keep an entry this drop was for at most MAX_AGE_SECONDS.
            log.exception("could not publish a right-to-speak drop")

    def start(self) -> None:
        """Start this process's listener, once (again in a forked child)."""
        pid = os.getpid()
        if self._pid == pid or not _listening_possible():
            return
        self._pid = pid
        self._spawn(self._listen, pid)

    def _listen(self, pid: int) -> None:
        while self._pid == pid:
            pubsub = self.redis.pubsub()
            try:
                pubsub.subscribe(self.channel)
                while self._pid == pid:
                    message = pubsub.get_message(timeout=LISTEN_POLL_SECONDS)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        # (Re)subscribed: what was published while we were not cannot be known.
                        _cache.clear()
                        self._live_pid = pid
                    elif message["type"] == "message":
                        apply_message(message["data"])
            except Exception:
                log.warning(
                    "Redis subscription lost: sends read the right to speak from the database", exc_info=True
                )
            finally:
                self._live_pid = None
                _cache.clear()
                with contextlib.suppress(Exception):
                    pubsub.close()
            self._sleep(RESUBSCRIBE_SECONDS)


def _bus(app) -> SpeakBus | None:
    bus = app.extensions.get("parley.speak_bus")
    if bus is None and app.config["REDIS_URL"]:
        channel = f"{app.config['REDIS_NAMESPACE']}:speak"
        bus = SpeakBus(app.config["REDIS_URL"], channel, socketio.start_background_task, socketio.sleep)
        app.extensions["parley.speak_bus"] = bus
    return bus
