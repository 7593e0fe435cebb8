"""Who is connected, from which devices: one interface, kept in memory for a single process
or in Redis (with expiry) when several processes share the load.

Each socket is recorded under its user and its device. A user is online while at least one
live socket is recorded. In Redis every entry carries an expiry that its process refreshes
every `refresh_seconds` (a third of the TTL); a process that dies stops refreshing, so its
sockets expire within `ttl_seconds`. Each online user also has a deadline in one sorted set
(the latest expiry of their sockets): whoever takes the user out of that set — the process
whose disconnect closed their last socket, or any live process's sweep once the deadline has
passed with no live socket left — announces them offline, so the announcement is made once,
even when the process that held the sockets was killed.

Redis may go away (restarted, unreachable) and come back empty. While it is away, reads answer
from this process's own sockets (the only ones it can vouch for: users connected elsewhere look
offline), a connect is accepted and recorded only here (the caps on sockets are enforced on this
process's sockets alone), and a socket that closes is kept aside (`_leaving`); once it is back,
the keeper's refresh puts every socket of this process back, those accepted meanwhile included
(their users, new in the deadlines, are announced online again), and its sweep removes the
sockets kept aside, announcing offline the users left without one — nobody else could, since
their deadline may be gone with everything else. The outage is logged once, and its end.

`add` also enforces the caps on sockets per device and per user, atomically across processes.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from threading import Lock

logger = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 40
# At most this many expired users are taken per sweep; the next sweep takes the rest.
SWEEP_BATCH = 500
UNLIMITED = 2**31


class SocketLimitReached(Exception):
    """A new socket would exceed the cap on sockets per device (`scope="device"`) or per user."""

    def __init__(self, scope: str, limit: int):
        super().__init__(f"at most {limit} sockets per {scope}")
        self.scope = scope
        self.limit = limit


def _refresh_seconds(ttl_seconds: int) -> float:
    return max(1.0, ttl_seconds / 3)


class MemoryPresence:
    """Presence for one process."""

    def __init__(self, ttl_seconds: int = DEFAULT_TTL_SECONDS):
        self.ttl_seconds = ttl_seconds
        self.refresh_seconds = _refresh_seconds(ttl_seconds)
        self._lock = Lock()
        self._sockets: dict[str, tuple[int, int]] = {}
        self._by_user: dict[int, set[str]] = defaultdict(set)
        self._by_device: dict[int, set[str]] = defaultdict(set)

    def add(
        self,
        sid: str,
        user_id: int,
        device_id: int,
        *,
        max_per_device: int | None = None,
        max_per_user: int | None = None,
    ) -> bool:
        """Record a socket; True if this made the user come online. Raises SocketLimitReached
        (and records nothing) when the device or the user already has the most allowed."""
        with self._lock:
            if max_per_device is not None and len(self._by_device.get(device_id, ())) >= max_per_device:
                raise SocketLimitReached("device", max_per_device)
            if max_per_user is not None and len(self._by_user.get(user_id, ())) >= max_per_user:
                raise SocketLimitReached("user", max_per_user)
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

    def refresh(self) -> list[int]:
        """Nothing expires in memory (so nobody comes back)."""
        return []

    def sweep(self) -> list[tuple[int, float]]:
        """Nothing expires in memory (so nobody is left to announce)."""
        return []

    def clear(self) -> None:
        with self._lock:
            self._sockets.clear()
            self._by_user.clear()
            self._by_device.clear()


# KEYS: user's sockets, device's sockets, deadlines. ARGV: sid, now, expiry, max per device,
# max per user, user id, key TTL. Returns -1/-2 when the device/user is at its cap, else 1 if
# the user was not online before (their deadline is new), 0 if they were.
_ADD = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return -1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[5]) then return -2 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[7])
return redis.call('ZADD', KEYS[3], 'GT', ARGV[3], ARGV[6])
"""

# KEYS: user's sockets, device's sockets, deadlines. ARGV: sid, now, user id, late. Returns 1
# when this removal left the user without a live socket and took their deadline (so it
# announces). `late` (1): a removal Redis missed while it was away; the deadline may have been
# lost with everything else (a restart), so a user left without a socket is announced anyway.
_REMOVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) > 0 then return 0 end
local taken = redis.call('ZREM', KEYS[3], ARGV[3])
if ARGV[4] == '1' then return 1 end
return taken
"""

# KEYS: deadlines. ARGV: now, prefix of the users' socket keys, batch size. Takes every user
# whose deadline has passed and who has no live socket left; returns [user id, deadline, ...].
_SWEEP = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[3])
local taken = {}
for i = 1, #due, 2 do
  if redis.call('ZCOUNT', ARGV[2] .. due[i], ARGV[1], '+inf') == 0 then
    redis.call('ZREM', KEYS[1], due[i])
    table.insert(taken, due[i])
    table.insert(taken, due[i + 1])
  end
end
return taken
"""


class RedisPresence:
    """Presence shared by every process through Redis sorted sets scored by expiry time,
    under `<namespace>:presence:`."""

    def __init__(self, url: str, namespace: str, ttl_seconds: int = DEFAULT_TTL_SECONDS):
        import redis

        self.redis = redis.Redis.from_url(url)
        self.prefix = f"{namespace}:presence"
        self.ttl_seconds = ttl_seconds
        self.refresh_seconds = _refresh_seconds(ttl_seconds)
        self._deadlines = f"{self.prefix}:deadlines"
        # The sockets of this process; the lock keeps a refresh from re-adding a socket that a
        # disconnect is removing at the same time.
        self._local: dict[str, tuple[int, int]] = {}
        # Sockets that closed while Redis was away: sid -> (user, device, when it closed).
        self._leaving: dict[str, tuple[int, int, float]] = {}
        self._redis_errors = redis.RedisError
        self._away = False  # the last call met Redis away (logged once per outage)
        self._lock = Lock()
        self._add = self.redis.register_script(_ADD)
        self._remove = self.redis.register_script(_REMOVE)
        self._sweep = self.redis.register_script(_SWEEP)

    def _user_key(self, user_id: int) -> str:
        return f"{self.prefix}:u:{user_id}"

    def _device_key(self, device_id: int) -> str:
        return f"{self.prefix}:d:{device_id}"

    def add(
        self,
        sid: str,
        user_id: int,
        device_id: int,
        *,
        max_per_device: int | None = None,
        max_per_user: int | None = None,
    ) -> bool:
        now = time.time()
        keys = [self._user_key(user_id), self._device_key(device_id), self._deadlines]
        args = [
            sid,
            now,
            now + self.ttl_seconds,
            max_per_device if max_per_device is not None else UNLIMITED,
            max_per_user if max_per_user is not None else UNLIMITED,
            user_id,
            self.ttl_seconds * 2,
        ]
        with self._lock:
            try:
                result = self._add(keys=keys, args=args)
            except self._redis_errors as error:
                self._note_away(error)
                return self._add_here(sid, user_id, device_id, max_per_device, max_per_user)
            self._note_back()
            if result == -1:
                raise SocketLimitReached("device", max_per_device)
            if result == -2:
                raise SocketLimitReached("user", max_per_user)
            self._local[sid] = (user_id, device_id)
        return result == 1

    def _add_here(
        self, sid: str, user_id: int, device_id: int, max_per_device: int | None, max_per_user: int | None
    ) -> bool:
        """Record a socket on this process alone while Redis is away (the lock held); the
        keeper's first refresh once Redis is back puts it there. True if the user had no socket
        on this process (they may have one elsewhere: announcing them online again is harmless)."""
        on_device = sum(1 for _, device in self._local.values() if device == device_id)
        of_user = sum(1 for user, _ in self._local.values() if user == user_id)
        if max_per_device is not None and on_device >= max_per_device:
            raise SocketLimitReached("device", max_per_device)
        if max_per_user is not None and of_user >= max_per_user:
            raise SocketLimitReached("user", max_per_user)
        self._local[sid] = (user_id, device_id)
        return of_user == 0

    def _note_away(self, error: Exception) -> None:
        if not self._away:
            self._away = True
            logger.warning("Presence store unreachable (%s): answering from this process's sockets", error)

    def _note_back(self) -> None:
        if self._away:
            self._away = False
            logger.warning("Presence store reachable again")

    def remove(self, sid: str) -> tuple[int | None, bool]:
        with self._lock:
            entry = self._local.pop(sid, None)
            if entry is None:
                return None, False
            user_id, device_id = entry
            try:
                taken = self._remove_socket(sid, user_id, device_id, late=False)
            except self._redis_errors:
                # Redis is away: the next sweep after it is back removes the socket and, if it
                # was the user's last, announces them offline (nothing else would).
                self._leaving[sid] = (user_id, device_id, time.time())
                return user_id, False
        return user_id, taken == 1

    def _remove_socket(self, sid: str, user_id: int, device_id: int, *, late: bool) -> int:
        keys = [self._user_key(user_id), self._device_key(device_id), self._deadlines]
        return self._remove(keys=keys, args=[sid, time.time(), user_id, 1 if late else 0])

    def _read(self, read, local):
        """`read()` from Redis; while Redis is away, `local(sockets of this process)` instead."""
        try:
            result = read()
        except self._redis_errors as error:
            self._note_away(error)
            with self._lock:
                sockets = dict(self._local)
            return local(sockets)
        self._note_back()
        return result

    def _live(self, key: str) -> list[str]:
        return [sid.decode() for sid in self.redis.zrangebyscore(key, time.time(), "+inf")]

    def sids_of_user(self, user_id: int) -> list[str]:
        return self._read(
            lambda: self._live(self._user_key(user_id)),
            lambda sockets: [sid for sid, (user, _) in sockets.items() if user == user_id],
        )

    def sids_of_device(self, device_id: int) -> list[str]:
        return self._read(
            lambda: self._live(self._device_key(device_id)),
            lambda sockets: [sid for sid, (_, device) in sockets.items() if device == device_id],
        )

    def online(self, user_ids) -> set[int]:
        user_ids = list(user_ids)
        if not user_ids:
            return set()

        def read() -> set[int]:
            now = time.time()
            pipe = self.redis.pipeline()
            for user_id in user_ids:
                pipe.zcount(self._user_key(user_id), now, "+inf")
            return {user_id for user_id, count in zip(user_ids, pipe.execute(), strict=True) if count}

        return self._read(read, lambda sockets: {user for user, _ in sockets.values()} & set(user_ids))

    def online_count(self) -> int:
        """Users with a deadline still ahead (one sorted set: cheap enough for dashboards)."""
        return self._read(
            lambda: self.redis.zcount(self._deadlines, time.time(), "+inf"),
            lambda sockets: len({user for user, _ in sockets.values()}),
        )

    def refresh(self) -> list[int]:
        """Push this process's sockets' expiry forward (called every `refresh_seconds`).
        Returns the users whose offline was already announced (this process was too slow to
        refresh in time) and who are online again: they need announcing."""
        with self._lock:
            if not self._local:
                return []
            expiry = time.time() + self.ttl_seconds
            pipe = self.redis.pipeline(transaction=False)
            users: list[int] = []
            for sid, (user_id, device_id) in self._local.items():
                pipe.zadd(self._user_key(user_id), {sid: expiry})
                pipe.expire(self._user_key(user_id), self.ttl_seconds * 2)
                pipe.zadd(self._device_key(device_id), {sid: expiry})
                pipe.expire(self._device_key(device_id), self.ttl_seconds * 2)
                pipe.zadd(self._deadlines, {str(user_id): expiry}, gt=True)
                users.append(user_id)
            results = pipe.execute()
            self._note_back()
        added = results[4::5]
        return list(dict.fromkeys(user_id for user_id, new in zip(users, added, strict=True) if new))

    def sweep(self) -> list[tuple[int, float]]:
        """Take the users whose sockets all expired (their process died) and return each with
        the time its sockets were last refreshed; the caller announces them offline. Atomic:
        of all the processes sweeping, only one takes a given user. Also settles the sockets of
        this process that closed while Redis was away (`_settle_leaving`)."""
        gone = self._settle_leaving()
        taken = self._sweep(keys=[self._deadlines], args=[time.time(), f"{self.prefix}:u:", SWEEP_BATCH])
        gone += [(int(taken[i]), float(taken[i + 1]) - self.ttl_seconds) for i in range(0, len(taken), 2)]
        return gone

    def _settle_leaving(self) -> list[tuple[int, float]]:
        """Remove the sockets whose disconnect Redis missed; returns the users left without a
        live socket, each once, with the time their last socket closed."""
        with self._lock:
            leaving, self._leaving = self._leaving, {}
        gone: dict[int, float] = {}
        pending = list(leaving.items())
        try:
            while pending:
                sid, (user_id, device_id, closed_at) = pending[0]
                if self._remove_socket(sid, user_id, device_id, late=True) == 1:
                    gone[user_id] = max(closed_at, gone.get(user_id, closed_at))
                pending.pop(0)
        except self._redis_errors:
            with self._lock:  # Redis is still away: the next sweep tries again
                for sid, entry in pending:
                    self._leaving.setdefault(sid, entry)
            raise
        # A user who came back on this process meanwhile is online: not announced.
        with self._lock:
            here = {user_id for user_id, _ in self._local.values()}
        return [(user_id, closed_at) for user_id, closed_at in gone.items() if user_id not in here]

    def clear(self) -> None:
        with self._lock:
            self._local.clear()
            self._leaving.clear()
        keys = list(self.redis.scan_iter(f"{self.prefix}:*"))
        if keys:
            self.redis.delete(*keys)
