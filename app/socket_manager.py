"""Targeted socket.io delivery across processes: each process hears only its own sockets' rooms.

Flask-SocketIO's Redis queue publishes every emit on one channel that every process reads, so
every process decodes every message of the deployment and per-message CPU grows with the number
of processes. `TargetedRedisManager` (a subclass of python-socketio's `RedisManager`) keeps the
same contract with three kinds of channel under the deployment's namespace (`<channel>` =
`<REDIS_NAMESPACE>:socketio`):

- `<channel>:room:<namespace>:<room>`, one per room: a process subscribes when the first of its
  sockets enters the room and unsubscribes when the last one leaves (Parley's rooms are users,
  `user:<id>`, so a process hears the users connected to it, and nobody else's traffic). An emit
  to at most `fanout_rooms` rooms is published once per room, in one pipelined round trip.
- `<channel>:fanout`: an emit to more rooms (a group's members) is one publish there, whatever the
  group's size; every process reads it, but finds the rooms it holds in a plain-text header and
  decodes the payload only when it holds one of them.
- `<channel>` itself: what python-socketio's pub/sub protocol sends to everyone (broadcasts without
  a room, disconnects of a socket wherever it is, close_room, callbacks), unchanged.

An emit is delivered to this process's own sockets at once and published for the others; a
process skips, by the header alone, what it published itself. Emits with a callback keep the
stock path. A room that is a socket id of another process is not reachable (Parley never emits
to one: it emits to user rooms and answers a socket's own events).

Whatever was published while nobody listened is filled by /sync, when Parley asks sockets to
`resync` (nothing acknowledged is lost: messages are in the database before they are emitted):
- the subscription connection dropped (Redis restarted, a network cut), or could not be made at
  start: once the listener has subscribed again to every room its sockets are in, it calls
  `on_resubscribed` (Parley: this process's sockets resync);
- a publish failed: the process stops publishing (no emit waits on a Redis that is away) until its
  next beat reaches Redis, then calls `on_missed` (Parley: every socket of the deployment resyncs);
- a process died, maybe with messages stored and not yet published: every process beats in
  `<channel>:processes` (a sorted set scored by Redis's own clock, every `HEARTBEAT_SECONDS`), and
  the first to find another's beat older than `PROCESS_TIMEOUT_SECONDS` takes it out (once) and
  calls `on_process_lost` (Parley: every socket of the deployment resyncs).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

from redis.backoff import NoBackoff
from redis.retry import Retry
from socketio import RedisManager
from socketio.manager import Manager
from socketio.packet import Packet

log = logging.getLogger(__name__)

HEADER_END = b"\n"
FIELD = "\x1e"
ROOMS = "\x1f"
DEFAULT_FANOUT_ROOMS = 8
MAX_RETRY_SECONDS = 5
HEARTBEAT_SECONDS = 2.0
PROCESS_TIMEOUT_SECONDS = 8.0

# KEYS: the processes' beats. ARGV: this process, seconds without a beat that mean dead. Beats
# for this process and takes out (atomically, so one process reports each) and returns the
# processes whose last beat is older. Redis's clock, so the processes' clocks may differ.
_BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', KEYS[1], now, ARGV[1])
local lost = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. tostring(now - tonumber(ARGV[2])))
if #lost > 0 then redis.call('ZREM', KEYS[1], unpack(lost)) end
return lost
"""


class TargetedRedisManager(RedisManager):
    name = "parley-targeted-redis"

    def __init__(
        self,
        url: str,
        channel: str,
        *,
        fanout_rooms: int = DEFAULT_FANOUT_ROOMS,
        on_resubscribed: Callable[[], None] | None = None,
        on_missed: Callable[[], None] | None = None,
        on_process_lost: Callable[[list[str]], None] | None = None,
        write_only: bool = False,
        logger=None,
        json=None,
    ):
        # One attempt per command, short timeouts: nothing waits long on a Redis that is away
        # (the listener subscribes again, and sockets resync, once it is back).
        options = {
            "retry": Retry(NoBackoff(), 0),
            "socket_connect_timeout": 2,
            "socket_timeout": 2,
            "socket_keepalive": True,
        }
        super().__init__(
            url, channel=channel, write_only=write_only, logger=logger, json=json, redis_options=options
        )
        self.fanout_rooms = fanout_rooms
        self.fanout_channel = f"{channel}:fanout"
        self.room_prefix = f"{channel}:room:"
        self.processes_key = f"{channel}:processes"
        self.on_resubscribed = on_resubscribed
        self.on_missed = on_missed
        self.on_process_lost = on_process_lost
        self._wanted: set[str] = set()  # the room channels this process needs
        self._live = False  # the listener is subscribed to all of them
        self._listener = None  # the pub/sub object the listener reads (None while away)
        self._lock = None  # made in initialize (a gevent lock)
        self._lost_link = False  # the listener was away: resync this process's sockets when back
        self._missed = False  # a publish failed: publish nothing until Redis answers the beat
        self._beat_script = None

    # --- start -------------------------------------------------------------------------------

    def initialize(self):
        from gevent.lock import RLock

        self._lock = RLock()
        if not self.write_only:
            # Subscribed before the first socket joins its room, so that socket hears from the
            # start (the listener connects in the background only if Redis is away now).
            try:
                self._connect_listener()
            except Exception as error:
                log.error("cannot subscribe to Redis yet (%s); the listener keeps trying", error)
                self._lost_link = True
        super().initialize()  # starts the listener (`_thread`)
        if not self.write_only:
            self.server.start_background_task(self._beat)
            atexit.register(self._leave)

    def room_channel(self, namespace: str, room: str) -> str:
        return f"{self.room_prefix}{namespace}:{room}"

    def subscribed_channels(self) -> set[str]:
        """The room channels this process wants (tests and metrics)."""
        return set(self._wanted)

    # --- processes -----------------------------------------------------------------------------

    def _beat(self) -> None:
        while True:
            try:
                self.beat_once()
            except Exception as error:
                self.connected = False
                log.debug("process beat failed: %s", error)
            time.sleep(HEARTBEAT_SECONDS)

    def beat_once(self) -> None:
        """Say this process lives, report the processes that stopped saying so, and once Redis
        answers again after a failed publish, have every socket catch up."""
        if not self.connected:
            self._redis_connect()
        if self._beat_script is None:
            self._beat_script = self.redis.register_script(_BEAT)
        taken = self._beat_script(keys=[self.processes_key], args=[self.host_id, PROCESS_TIMEOUT_SECONDS])
        lost = [host.decode() for host in taken]
        if self._missed:
            self._missed = False
            log.warning("Redis answers again after a failed publish: every socket catches up")
            if self.on_missed is not None:
                self.on_missed()
        if lost:
            log.warning("server process(es) %s stopped beating: every socket catches up", ", ".join(lost))
            if self.on_process_lost is not None:
                self.on_process_lost(lost)

    def _leave(self) -> None:
        """A process that stops cleanly takes itself out (one that dies is found by the others)."""
        with contextlib.suppress(Exception):
            self.redis.zrem(self.processes_key, self.host_id)

    # --- subscriptions -------------------------------------------------------------------------

    def _guard(self):
        if self._lock is None:  # before initialize (write-only, or nothing emitted yet)
            return contextlib.nullcontext()
        return self._lock

    def _sync_room(self, namespace: str, room) -> None:
        """Subscribe to the room's channel while this process holds one of its sockets, and not
        otherwise: decided and done under one lock, so joins and leaves in any order end right."""
        if room is None or self.write_only or self.is_sid_room(namespace, room):
            return
        channel = self.room_channel(namespace, room)
        with self._guard():
            wanted = room in self.rooms.get(namespace, {})
            if wanted == (channel in self._wanted):
                return
            if wanted:
                self._wanted.add(channel)
            else:
                self._wanted.discard(channel)
            listener = self._listener
            if not self._live or listener is None:
                return  # subscribed with the rest when the listener is back
            try:
                if wanted:
                    listener.subscribe(channel)
                else:
                    listener.unsubscribe(channel)
            except Exception:
                # The connection is broken: close it, so the listener notices at once and
                # subscribes again to everything `_wanted` holds.
                self._live = False
                with contextlib.suppress(Exception):
                    listener.connection.disconnect()

    def basic_enter_room(self, sid, namespace, room, eio_sid=None):
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        if room != sid:
            self._sync_room(namespace, room)

    def basic_leave_room(self, sid, namespace, room):
        super().basic_leave_room(sid, namespace, room)
        if room != sid:
            self._sync_room(namespace, room)

    # --- emitting ----------------------------------------------------------------------------

    def emit(self, event, data, namespace=None, room=None, skip_sid=None, callback=None, to=None, **kwargs):
        room = to or room
        if kwargs.get("ignore_queue") or room is None or callback is not None:
            return super().emit(
                event, data, namespace=namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs
            )
        namespace = namespace or "/"
        rooms = [room] if isinstance(room, str) else list(dict.fromkeys(room))
        # This process's sockets first, as the stock manager does.
        Manager.emit(self, event, data, namespace, room=rooms, skip_sid=skip_sid)
        # A room that is one of this process's socket ids has nobody anywhere else.
        own_sids = self.rooms.get(namespace, {}).get(None, {})
        remote = [name for name in rooms if name not in own_sids]
        if remote:
            self._publish_rooms(event, data, namespace, remote, skip_sid)

    def _publish_rooms(self, event, data, namespace: str, rooms: list[str], skip_sid) -> None:
        if self._missed:
            return  # Redis failed a publish: the beat has every socket catch up once it answers
        data = list(data) if isinstance(data, tuple) else [data]
        binary = Packet.data_is_binary(data)
        if binary:
            data, attachments = Packet.deconstruct_binary(data)
            data = [data, *[base64.b64encode(a).decode() for a in attachments]]
        message = {"method": "emit", "event": event, "data": data, "binary": binary, "skip_sid": skip_sid}
        body = self.json.dumps({**message, "namespace": namespace}).encode()
        prefix = self.host_id + FIELD + namespace + FIELD
        try:
            if not self.connected:
                self._redis_connect()
            if len(rooms) > self.fanout_rooms:
                self.redis.publish(
                    self.fanout_channel, (prefix + ROOMS.join(rooms)).encode() + HEADER_END + body
                )
                return
            pipe = self.redis.pipeline(transaction=False)
            for name in rooms:
                pipe.publish(self.room_channel(namespace, name), (prefix + name).encode() + HEADER_END + body)
            pipe.execute()
        except Exception as error:
            # Delivered to this process's sockets; the others catch up through /sync once Redis
            # answers the beat again. Until then nothing waits on it.
            self.connected = False
            self._missed = True
            log.error("cannot publish to Redis (%s): publishing stops until it answers again", error)

    # --- receiving ---------------------------------------------------------------------------

    def _handle_targeted(self, payload: bytes) -> None:
        end = payload.find(HEADER_END)
        if end < 0:
            return
        fields = payload[:end].decode().split(FIELD, 2)
        if len(fields) != 3 or fields[0] == self.host_id:
            return
        namespace_rooms = self.rooms.get(fields[1])
        if not namespace_rooms:
            return
        local = [name for name in fields[2].split(ROOMS) if name in namespace_rooms]
        if not local:
            return
        message = self.json.loads(payload[end + 1 :])
        if not isinstance(message, dict) or "event" not in message or "data" not in message:
            return
        message.update(room=local if len(local) > 1 else local[0], callback=None, namespace=fields[1])
        self._handle_emit(message)

    def _connect_listener(self):
        """A new subscription connection, subscribed to everything this process needs."""
        module = self._get_redis_module()
        # Named, so an operator (or a test) can tell this deployment's listeners in CLIENT LIST.
        client = module.Redis.from_url(
            self.redis_url, client_name=f"{self.channel}:listener", **self.redis_options
        )
        listener = client.pubsub(ignore_subscribe_messages=True)
        listener.subscribe(self.channel, self.fanout_channel)
        with self._guard():
            if self._wanted:
                listener.subscribe(*self._wanted)
            self._listener = listener
            self._live = True
        return listener

    def _messages(self) -> Iterable[tuple[bytes, bytes]]:
        """(channel, payload) of every message for this process, across reconnections."""
        retry = 0.2
        while True:
            listener = self._listener if self._live else None
            try:
                listener = listener or self._connect_listener()
                if self._lost_link:
                    self._lost_link = False
                    log.warning("subscribed to Redis again (%d rooms): sockets catch up", len(self._wanted))
                    if self.on_resubscribed is not None:
                        self.on_resubscribed()
                retry = 0.2
                for item in listener.listen():
                    if item.get("type") == "message":
                        yield item["channel"], item["data"]
            except Exception as error:
                log.error("Redis subscription lost (%s); trying again in %.1f s", error, retry)
            with self._guard():
                self._live = False
                self._listener = None
            self._lost_link = True
            if listener is not None:
                with contextlib.suppress(Exception):
                    listener.close()
            time.sleep(retry)
            retry = min(retry * 2, MAX_RETRY_SECONDS)

    def _thread(self):
        base = self.channel.encode()
        while True:
            try:
                for channel, payload in self._messages():
                    try:
                        if channel != base:
                            self._handle_targeted(payload)
                            continue
                        message = self.json.loads(payload)
                        if isinstance(message, dict) and "method" in message:
                            self._dispatch(message)
                    except Exception:
                        log.warning("ignored a malformed socket.io pub/sub message on %r", channel)
            except Exception:  # pragma: no cover - `_messages` handles its own errors
                log.exception("socket.io listener failed; starting again")
                time.sleep(1)

    def _dispatch(self, message: dict) -> None:
        """The stock pub/sub protocol on the shared channel (python-socketio's `_thread`)."""
        try:
            method = message["method"]
            if method == "callback":
                self._handle_callback(message)
            elif message.get("host_id") != self.host_id:
                handler = {
                    "emit": self._handle_emit,
                    "disconnect": self._handle_disconnect,
                    "enter_room": self._handle_enter_room,
                    "leave_room": self._handle_leave_room,
                    "close_room": self._handle_close_room,
                }.get(method)
                if handler is not None:
                    handler(message)
        except Exception:
            log.exception("handling a socket.io pub/sub message failed")


def start_early(server) -> None:
    """Initialize the server's client manager now rather than at the first socket (what
    python-socketio's server does then, flag included): a process serving only HTTP for a while
    still subscribes, beats, and is missed by the others if it dies."""
    if not getattr(server, "manager_initialized", True):
        server.manager_initialized = True
        server.manager.initialize()
