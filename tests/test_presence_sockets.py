"""Caps on open sockets per device and per user, counted across processes through the presence
store: the socket over the cap is refused at connect with `too_many_sockets`."""

from __future__ import annotations

import time
from contextlib import ExitStack

import pytest
import socketio

from app.presence import MemoryPresence, RedisPresence, SocketLimitReached
from tests.conftest import PASSWORD, REDIS_NAMESPACE, LiveServer, server_env
from tests.socket_client import Device


def open_socket(stack: ExitStack, url: str, device: Device) -> Device:
    """Another socket with `device`'s session cookie (a tab of the same browser)."""
    tab = stack.enter_context(Device(url, connect=False))
    tab.connect(cookie=device.cookie)
    return tab


def refusal(stack: ExitStack, url: str, device: Device) -> dict:
    tab = stack.enter_context(Device(url, connect=False))
    with pytest.raises(socketio.exceptions.ConnectionError):
        tab.connect(cookie=device.cookie)
    [refused] = tab.events("connect_error")
    return refused.get("data") or {}


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_the_presence_store_refuses_a_socket_over_either_cap(store, redis_url):
    presence = MemoryPresence() if store == "memory" else RedisPresence(redis_url, f"{REDIS_NAMESPACE}:caps")
    presence.clear()
    caps = {"max_per_device": 2, "max_per_user": 3}
    assert presence.add("a1", 7, 70, **caps) is True
    assert presence.add("a2", 7, 70, **caps) is False
    with pytest.raises(SocketLimitReached) as device_full:
        presence.add("a3", 7, 70, **caps)
    assert (device_full.value.scope, device_full.value.limit) == ("device", 2)
    assert presence.add("b1", 7, 71, **caps) is False
    with pytest.raises(SocketLimitReached) as user_full:
        presence.add("b2", 7, 71, **caps)
    assert (user_full.value.scope, user_full.value.limit) == ("user", 3)
    # Nothing was recorded for the refused sockets; another user is not affected.
    assert sorted(presence.sids_of_user(7)) == ["a1", "a2", "b1"]
    assert presence.add("c1", 8, 80, **caps) is True
    # A closed socket frees its place.
    assert presence.remove("a1") == (7, False)
    assert presence.add("a4", 7, 70, **caps) is False
    presence.clear()


def test_sockets_over_the_caps_are_refused_across_processes(
    make_user, database_url, instance_path, redis_url, tmp_path
):
    make_user("alice")
    make_user("bob")
    env = server_env(
        database_url,
        instance_path,
        REDIS_URL=redis_url,
        LOGIN_RATE_LIMIT="1000 per minute",
        MAX_SOCKETS_PER_DEVICE="2",
        MAX_SOCKETS_PER_USER="3",
    )
    with ExitStack() as stack:
        first, second = (LiveServer(env, tmp_path / f"{name}.log") for name in ("first", "second"))
        for process in (first, second):
            stack.callback(process.stop)
            process.start()
        laptop = stack.enter_context(Device(first.url, "alice", PASSWORD))
        laptop_tab = open_socket(stack, second.url, laptop)

        assert refusal(stack, first.url, laptop) == {
            "code": "too_many_sockets",
            "scope": "device",
            "limit": 2,
        }
        assert refusal(stack, second.url, laptop) == {
            "code": "too_many_sockets",
            "scope": "device",
            "limit": 2,
        }

        phone = stack.enter_context(Device(second.url, "alice", PASSWORD))
        assert refusal(stack, first.url, phone) == {"code": "too_many_sockets", "scope": "user", "limit": 3}
        # Another user has places of their own.
        assert stack.enter_context(Device(first.url, "bob", PASSWORD)).connected

        laptop_tab.disconnect()
        time.sleep(0.5)  # the server hears the disconnect
        again = open_socket(stack, first.url, phone)
        assert again.connected and laptop.connected and phone.connected


def test_a_connect_that_fails_after_being_counted_gives_its_place_back(app, make_user, login, monkeypatch):
    from app.chat import events
    from app.extensions import socketio as server

    make_user("alice")
    http = login("alice")

    def broken(*args, **kwargs):
        raise RuntimeError("database down")

    monkeypatch.setattr(events, "announce_presence", broken)
    with pytest.raises(RuntimeError):
        server.test_client(app, flask_test_client=http)
    presence = app.extensions["parley.presence"]
    assert presence.online_count() == 0
    monkeypatch.undo()
    assert server.test_client(app, flask_test_client=http).is_connected()
    assert presence.online_count() == 1
