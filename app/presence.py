"""Who is connected, from which devices: one interface, kept in memory for a single process
or in Redis (with expiry) when several processes share the load.

Each socket is recorded under its user and its device. A user is online while at least one
live socket is recorded. In Redis every entry carries an expiry that its process refreshes
every `REFRESH_SECONDS`; a process that dies stops refreshing, so its users drop offline
within `TTL_SECONDS`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from threading import Lock

TTL_SECONDS = 60
REFRESH_SECONDS = 20


class MemoryPresence:
    """Presence for one process."""

    def __init__(self):
        self._lock = Lock()
        self._sockets: dict[str, tuple[int, int]] = {}
        self._by_user: dict[int, set[str]] = defaultdict(set)
        self._by_device: dict[int, set[str]] = defaultdict(set)

    def add(self, sid: str, user_id: int, device_id: int) -> bool:
        """Record a socket; True if this made the user come online."""
        with self._lock:
            self._sockets[sid] = (user_id, device_id)
            was_offline = not self._by_user[user_id]
            self._by_user[user_id].add(sid)
            self._by_device[device_id].add(sid)
            return was_offline

    def remove(self, sid: str) -> tuple[int | None, bool]:
        """Forget a socket; returns its user and whether the user is now offline."""
        with self._lock:
            entry = self._sockets.pop(sid, None)
            if entry is None:
                return None, False
            user_id, device_id = entry
            self._by_user[user_id].discard(sid)
            self._by_device[device_id].discard(sid)
            if not self._by_device[device_id]:
                del self._by_device[device_id]
            offline = not self._by_user[user_id]
            if offline:
                del self._by_user[user_id]
            return user_id, offline

    def sids_of_user(self, user_id: int) -> list[str]:
        return list(self._by_user.get(user_id, ()))

    def sids_of_device(self, device_id: int) -> list[str]:
        return list(self._by_device.get(device_id, ()))

    def online(self, user_ids) -> set[int]:
        return {user_id for user_id in user_ids if self._by_user.get(user_id)}

    def online_count(self) -> int:
        return sum(1 for sids in self._by_user.values() if sids)

    def refresh(self) -> None:
        """Nothing expires in memory."""

    def clear(self) -> None:
        with self._lock:
            self._sockets.clear()
            self._by_user.clear()
            self._by_device.clear()


class RedisPresence:
    """Presence shared by every process through Redis sorted sets scored by expiry time."""

    def __init__(self, url: str, prefix: str = "parley:presence"):
        import redis

        self.redis = redis.Redis.from_url(url)
        self.prefix = prefix
        self._local: dict[str, tuple[int, int]] = {}

    def _user_key(self, user_id: int) -> str:
        return f"{self.prefix}:u:{user_id}"

    def _device_key(self, device_id: int) -> str:
        return f"{self.prefix}:d:{device_id}"

    def add(self, sid: str, user_id: int, device_id: int) -> bool:
        self._local[sid] = (user_id, device_id)
        now = time.time()
        user_key = self._user_key(user_id)
        pipe = self.redis.pipeline()
        pipe.zremrangebyscore(user_key, "-inf", now)
        pipe.zcard(user_key)
        pipe.zadd(user_key, {sid: now + TTL_SECONDS})
        pipe.expire(user_key, TTL_SECONDS * 2)
        pipe.zadd(self._device_key(device_id), {sid: now + TTL_SECONDS})
        pipe.expire(self._device_key(device_id), TTL_SECONDS * 2)
        before = pipe.execute()[1]
        return before == 0

    def remove(self, sid: str) -> tuple[int | None, bool]:
        entry = self._local.pop(sid, None)
        if entry is None:
            return None, False
        user_id, device_id = entry
        user_key = self._user_key(user_id)
        pipe = self.redis.pipeline()
        pipe.zrem(user_key, sid)
        pipe.zrem(self._device_key(device_id), sid)
        pipe.zremrangebyscore(user_key, "-inf", time.time())
        pipe.zcard(user_key)
        remaining = pipe.execute()[3]
        return user_id, remaining == 0

    def _live(self, key: str) -> list[str]:
        return [sid.decode() for sid in self.redis.zrangebyscore(key, time.time(), "+inf")]

    def sids_of_user(self, user_id: int) -> list[str]:
        return self._live(self._user_key(user_id))

    def sids_of_device(self, device_id: int) -> list[str]:
        return self._live(self._device_key(device_id))

    def online(self, user_ids) -> set[int]:
        user_ids = list(user_ids)
        if not user_ids:
            return set()
        now = time.time()
        pipe = self.redis.pipeline()
        for user_id in user_ids:
            pipe.zcount(self._user_key(user_id), now, "+inf")
        return {user_id for user_id, count in zip(user_ids, pipe.execute(), strict=True) if count}

    def online_count(self) -> int:
        """Users online across all processes (scans the presence keys: for dashboards, not hot paths)."""
        now = time.time()
        keys = list(self.redis.scan_iter(f"{self.prefix}:u:*", count=1000))
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.zcount(key, now, "+inf")
        return sum(1 for count in pipe.execute() if count) if keys else 0

    def refresh(self) -> None:
        """Push this process's sockets' expiry forward (called every REFRESH_SECONDS)."""
        expiry = time.time() + TTL_SECONDS
        pipe = self.redis.pipeline(transaction=False)
        for sid, (user_id, device_id) in list(self._local.items()):
            pipe.zadd(self._user_key(user_id), {sid: expiry}, xx=True)
            pipe.expire(self._user_key(user_id), TTL_SECONDS * 2)
            pipe.zadd(self._device_key(device_id), {sid: expiry}, xx=True)
            pipe.expire(self._device_key(device_id), TTL_SECONDS * 2)
        pipe.execute()

    def clear(self) -> None:
        self._local.clear()
        keys = list(self.redis.scan_iter(f"{self.prefix}:*"))
        if keys:
            self.redis.delete(*keys)
