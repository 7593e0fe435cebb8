"""The right to speak kept in memory: every service that changes it drops it at once, in this
process and (through Redis) in the others; mutes run out on time without any drop."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from datetime import timedelta

import pytest
import redis
import requests

from app import speak_cache
from app.auth import services as auth
from app.extensions import db
from app.groups import roles as group_roles
from app.groups import services as groups
from app.models import GroupMember, Sanction, User, utcnow
from app.moderation import services as moderation
from app.social import services as social
from app.speak_cache import SpeakCache
from tests.chat_helpers import connect
from tests.cluster import Cluster, pin
from tests.conftest import PASSWORD, server_env
from tests.socket_client import Device
from tests.test_admin import csrf_of


def cached(user_id: int, conversation_id: int):
    return speak_cache._cache.get(user_id, conversation_id)


def refused(ack: dict) -> str | None:
    return None if ack["ok"] else ack["error"]["code"]


@pytest.fixture
def root(make_user):
    return make_user("root", is_admin=True)


@pytest.fixture
def pair(app, make_user, login, befriend):
    """Alice and Bob, friends, with their direct conversation; Alice's cache entry is warm."""
    alice_id, bob_id = make_user("alice"), make_user("bob")
    befriend(alice_id, bob_id)
    alice, bob = connect(app, login("alice")), connect(app, login("bob"))
    response = alice.http.post("/api/v1/conversations", json={"user_id": bob_id})
    conversation_id = response.get_json()["conversation"]["id"]
    assert alice.send(conversation_id, "warm")["ok"] is True
    assert cached(alice_id, conversation_id) is not None
    return alice, bob, conversation_id


@pytest.fixture
def team(app, make_user, login, befriend):
    """Olive owns a group with Max in it; Max's cache entry is warm."""
    owner_id, member_id = make_user("olive"), make_user("max")
    befriend(owner_id, member_id)
    with app.app_context():
        group = groups.create_group(owner_id, "Team", [member_id])
        ids = (group.id, group.conversation_id)
    member = connect(app, login("max"))
    assert member.send(ids[1], "warm")["ok"] is True
    assert cached(member_id, ids[1]) is not None
    return owner_id, member, ids


# --- each service that changes the right to speak drops it at once ---------------------------


def test_a_site_mute_and_its_lifting_bite_at_once(app, pair, root):
    alice, _, conversation_id = pair
    with app.app_context():
        moderation.mute_user(root, alice.user_id, "flood", 30)
    assert refused(alice.send(conversation_id, "after")) == "muted"
    with app.app_context():
        moderation.unmute(root, alice.user_id)
    assert alice.send(conversation_id, "free")["ok"] is True


def test_a_ban_drops_the_entry_and_the_device(app, pair, root):
    alice, _, conversation_id = pair
    with app.app_context():
        moderation.ban_user(root, alice.user_id, "spam")
    assert cached(alice.user_id, conversation_id) is None
    assert not alice.socket.is_connected()
    response = alice.http.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"client_msg_id": "after-ban-0001", "body": {"type": "txt", "msg": "still here?"}},
    )
    assert response.status_code == 401


def test_a_block_either_way_and_its_lifting_bite_at_once(app, pair):
    alice, bob, conversation_id = pair
    with app.app_context():
        social.block_user(bob.user_id, alice.user_id)
    assert refused(alice.send(conversation_id, "hello?")) == "blocked"
    with app.app_context():
        social.unblock_user(bob.user_id, alice.user_id)
    assert alice.send(conversation_id, "hello again")["ok"] is True
    with app.app_context():
        social.block_user(alice.user_id, bob.user_id)
    assert refused(alice.send(conversation_id, "I blocked him")) == "blocked"


def test_unfriending_closes_the_direct_chat_and_befriending_reopens_it(app, pair, befriend):
    alice, bob, conversation_id = pair
    with app.app_context():
        social.remove_friend(bob.user_id, alice.user_id)
    assert refused(alice.send(conversation_id, "friends?")) == "not_friends"
    befriend(alice.user_id, bob.user_id)
    assert alice.send(conversation_id, "friends again")["ok"] is True


def test_a_group_mute_bites_members_but_not_the_promoted(app, team):
    owner_id, member, (group_id, conversation_id) = team
    with app.app_context():
        group_roles.mute_all(owner_id, group_id, True)
    assert refused(member.send(conversation_id, "hi")) == "group_muted"
    with app.app_context():
        group_roles.set_role(owner_id, group_id, member.user_id, "admin")
    assert member.send(conversation_id, "admins may")["ok"] is True
    with app.app_context():
        group_roles.set_role(owner_id, group_id, member.user_id, "member")
    assert refused(member.send(conversation_id, "demoted")) == "group_muted"
    with app.app_context():
        group_roles.mute_all(owner_id, group_id, False)
    assert member.send(conversation_id, "unmuted")["ok"] is True


def test_a_member_mute_and_its_lifting_bite_at_once(app, team):
    owner_id, member, (group_id, conversation_id) = team
    with app.app_context():
        group_roles.mute_member(owner_id, group_id, member.user_id, 10)
    assert refused(member.send(conversation_id, "hi")) == "member_muted"
    with app.app_context():
        group_roles.mute_member(owner_id, group_id, member.user_id, 0)
    assert member.send(conversation_id, "back")["ok"] is True


def test_a_kick_bites_at_once_and_an_invitation_back_lets_them_speak(app, team):
    owner_id, member, (group_id, conversation_id) = team
    with app.app_context():
        groups.kick(owner_id, group_id, member.user_id)
    assert refused(member.send(conversation_id, "hi")) == "not_member"
    with app.app_context():
        groups.invite(owner_id, group_id, [member.user_id])
    assert member.send(conversation_id, "back in")["ok"] is True


def test_leaving_bites_at_once(app, team):
    _, member, (group_id, conversation_id) = team
    with app.app_context():
        groups.leave(member.user_id, group_id)
    assert refused(member.send(conversation_id, "bye?")) == "not_member"


def test_dissolving_bites_at_once(app, team):
    owner_id, member, (group_id, conversation_id) = team
    with app.app_context():
        groups.dissolve(owner_id, group_id, "done")
    assert refused(member.send(conversation_id, "hello?")) == "group_dissolved"


def test_the_admin_console_paths_drop_it_too(app, team, root):
    _, member, (group_id, conversation_id) = team
    with app.app_context():
        moderation.mute_group(root, group_id, True)
    assert refused(member.send(conversation_id, "hi")) == "group_muted"
    with app.app_context():
        moderation.mute_group(root, group_id, False)
        moderation.remove_group_member(root, group_id, member.user_id)
    assert refused(member.send(conversation_id, "hi")) == "not_member"


def test_typing_uses_the_same_check(app, team, login):
    owner_id, member, (group_id, conversation_id) = team
    with app.app_context():
        group_roles.mute_member(owner_id, group_id, member.user_id, 10)
    typist = connect(app, login("max"))  # a socket of its own: typing is throttled per socket
    assert refused(typist.emit("typing", {"conversation_id": conversation_id})) == "member_muted"


def test_a_new_nickname_shows_on_the_next_message(app, pair):
    alice, bob, conversation_id = pair
    with app.app_context():
        auth.update_profile(db.session.get(User, alice.user_id), {"nickname": "Alice B."})
    assert alice.send(conversation_id, "renamed")["message"]["sender"]["nickname"] == "Alice B."


# --- time: mutes run out without any drop ---------------------------------------------------


def wait_until(moment) -> None:
    time.sleep(max(0.0, (moment - utcnow()).total_seconds()) + 0.05)


def test_a_member_mute_runs_out_on_time_with_the_entry_warm(app, team, count_queries):
    _, member, (group_id, conversation_id) = team
    with app.app_context():
        # Written as the row would be, without the service: no drop reaches the cache.
        until = utcnow() + timedelta(seconds=1)
        db.session.get(GroupMember, (group_id, member.user_id)).muted_until = until
        db.session.commit()
    speak_cache.clear()
    assert refused(member.send(conversation_id, "hi")) == "member_muted"
    entry = cached(member.user_id, conversation_id)
    assert entry is not None and entry.member_muted_until == until
    wait_until(until)
    with count_queries() as statements:
        assert member.send(conversation_id, "free")["ok"] is True
    assert cached(member.user_id, conversation_id) is entry  # judged again, not reloaded
    assert not [statement for statement in statements if "group_members" in statement]


def test_a_site_mute_runs_out_on_time_with_the_entry_warm(app, pair):
    alice, _, conversation_id = pair
    with app.app_context():
        until = utcnow() + timedelta(seconds=1)
        db.session.add(Sanction(user_id=alice.user_id, kind="mute", expires_at=until))
        db.session.commit()
    speak_cache.clear()
    assert refused(alice.send(conversation_id, "hi")) == "muted"
    entry = cached(alice.user_id, conversation_id)
    assert entry is not None and entry.site_muted_until == until and not entry.site_muted_forever
    wait_until(until)
    assert alice.send(conversation_id, "free")["ok"] is True
    assert cached(alice.user_id, conversation_id) is entry


# --- what the cache saves, and when it stays out of the way ----------------------------------


def test_a_warm_send_runs_fewer_statements_than_a_cold_one(app, pair, count_queries):
    alice, _, conversation_id = pair
    speak_cache.clear()
    with count_queries() as cold:
        assert alice.send(conversation_id, "cold")["ok"] is True
    with count_queries() as warm:
        assert alice.send(conversation_id, "warm")["ok"] is True
    assert len(warm) == len(cold) - 1
    assert any("sanctions" in statement for statement in cold)
    assert not any("sanctions" in statement for statement in warm)


def test_switched_off_it_keeps_nothing(app, pair, monkeypatch, count_queries):
    alice, _, conversation_id = pair
    monkeypatch.setitem(app.config, "SPEAK_CACHE", False)
    speak_cache.clear()
    for text in ("one", "two"):
        with count_queries() as statements:
            assert alice.send(conversation_id, text)["ok"] is True
        assert any("sanctions" in statement for statement in statements)
    assert cached(alice.user_id, conversation_id) is None


def test_a_drop_is_applied_again_after_commit_and_not_at_all_after_rollback(app, pair):
    alice, _, conversation_id = pair
    key = (alice.user_id, conversation_id)
    stale = cached(*key)
    cache = speak_cache._cache
    with app.app_context():
        speak_cache.drop_user(alice.user_id)
        assert cached(*key) is None
        # A send on another greenlet reads the old rows before this transaction commits...
        cache.put(*key, cache.stamp(*key), stale)
        assert cached(*key) is stale
        db.session.commit()
        # ...and the drop after the commit takes its entry out again.
        assert cached(*key) is None

        db.session.get(User, alice.user_id)  # a transaction, as every service opens one
        speak_cache.drop_user(alice.user_id)
        cache.put(*key, cache.stamp(*key), stale)
        db.session.rollback()  # the change did not happen: its drop is not repeated
        db.session.commit()
        assert cached(*key) is stale


def next_message(pubsub, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
        if message is not None:
            return message
    return None


def test_drops_are_published_after_commit_on_the_namespaced_channel(make_app, redis_url, make_user):
    namespace = f"parley-speak-{time.monotonic_ns()}"
    application = make_app(REDIS_URL=redis_url, REDIS_NAMESPACE=namespace)
    alice_id, bob_id = make_user("alice"), make_user("bob")
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    try:
        pubsub.subscribe(f"{namespace}:speak")
        assert pubsub.get_message(timeout=2)["type"] == "subscribe"
        with application.app_context():
            social.block_user(alice_id, bob_id)
        message = next_message(pubsub, 2)
        assert json.loads(message["data"]) == {"users": [alice_id, bob_id], "conversations": []}
        with application.app_context():
            social.unblock_user(alice_id, bob_id)
            assert next_message(pubsub, 2) is not None
            db.session.get(User, alice_id)  # a transaction, as every service opens one
            speak_cache.drop_conversation(7)
            assert next_message(pubsub, 0.2) is None  # not before the commit...
            db.session.rollback()
            db.session.commit()
        assert next_message(pubsub, 0.3) is None  # ...and never after a rollback
    finally:
        pubsub.close()
        client.close()


def test_a_published_drop_is_applied_and_garbage_is_ignored(app, pair):
    alice, _, conversation_id = pair
    assert speak_cache.apply_message(json.dumps({"conversations": [conversation_id + 1]})) is True
    assert cached(alice.user_id, conversation_id) is not None
    assert speak_cache.apply_message(json.dumps({"users": [alice.user_id]})) is True
    assert cached(alice.user_id, conversation_id) is None
    for garbage in (b"not json", b"[1, 2]", b'{"users": ["x"]}', b'{"users": 5}'):
        assert speak_cache.apply_message(garbage) is False


# --- the cache itself ---------------------------------------------------------------------


def test_an_entry_loaded_across_a_drop_is_not_stored():
    cache = SpeakCache(capacity=10)
    stamp = cache.stamp(1, 2)
    cache.drop(users=[1])  # the ban commits while the send is still reading the old rows
    cache.put(1, 2, stamp, "stale")
    assert cache.get(1, 2) is None
    stamp = cache.stamp(1, 2)
    cache.drop(conversations=[2])
    cache.put(1, 2, stamp, "stale")
    assert cache.get(1, 2) is None
    stamp = cache.stamp(1, 2)
    cache.clear()
    cache.put(1, 2, stamp, "stale")
    assert cache.get(1, 2) is None


def test_drops_reach_exactly_the_entries_they_name():
    cache = SpeakCache(capacity=10)
    for key in [(1, 10), (1, 11), (2, 10), (3, 12)]:
        cache.put(*key, cache.stamp(*key), key)
    cache.drop(users=[1])
    assert [cache.get(*key) for key in [(1, 10), (1, 11), (2, 10), (3, 12)]] == [None, None, (2, 10), (3, 12)]
    cache.drop(conversations=[10])
    assert cache.get(2, 10) is None and cache.get(3, 12) == (3, 12)


def test_it_keeps_the_most_recently_used_up_to_its_size():
    cache = SpeakCache(capacity=2)
    for key in [(1, 1), (2, 2)]:
        cache.put(*key, cache.stamp(*key), key)
    assert cache.get(1, 1) == (1, 1)  # (2, 2) is now the least recently used
    cache.put(3, 3, cache.stamp(3, 3), (3, 3))
    assert len(cache) == 2
    assert cache.get(2, 2) is None and cache.get(1, 1) == (1, 1) and cache.get(3, 3) == (3, 3)
    off = SpeakCache(capacity=0)
    off.put(1, 1, off.stamp(1, 1), "x")
    assert off.get(1, 1) is None


def test_no_entry_outlives_its_maximum_age():
    now = [0.0]
    cache = SpeakCache(capacity=10, max_age=60, clock=lambda: now[0])
    cache.put(1, 1, cache.stamp(1, 1), "x")
    now[0] = 59.0
    assert cache.get(1, 1) == "x"
    now[0] = 60.5
    assert cache.get(1, 1) is None


def test_the_generation_maps_stay_bounded():
    cache = SpeakCache(capacity=10)
    cache.put(1, 1, cache.stamp(1, 1), "x")
    cache.drop(users=range(2, 2000))
    assert len(cache._users) + len(cache._conversations) <= 1024
    assert cache.get(1, 1) is None


# --- across processes ---------------------------------------------------------------------


def refused_within(device: Device, conversation_id: int, code: str, seconds: float = 1.0) -> float:
    """Send until the send is refused with `code`; how long that took (it must be ≤ `seconds`)."""
    started = time.monotonic()
    while True:
        ack = device.send(conversation_id, "still?")
        elapsed = time.monotonic() - started
        if refused(ack) == code:
            return elapsed
        assert ack["ok"], ack
        assert elapsed < seconds, f"still allowed after {elapsed:.2f} s"
        time.sleep(0.02)


def allowed_within(device: Device, conversation_id: int, seconds: float = 1.0) -> float:
    started = time.monotonic()
    while True:
        ack = device.send(conversation_id, "again?")
        elapsed = time.monotonic() - started
        if ack["ok"]:
            return elapsed
        assert elapsed < seconds, f"still refused after {elapsed:.2f} s: {ack}"
        time.sleep(0.02)


def test_a_change_on_one_process_bites_on_another_within_a_second(
    make_user, befriend, database_url, instance_path, redis_url, tmp_path, app
):
    make_user("root", is_admin=True)
    alice_id, bob_id = make_user("alice"), make_user("bob")
    befriend(alice_id, bob_id)
    with app.app_context():
        group = groups.create_group(bob_id, "Team", [alice_id])
        group_id, group_chat = group.id, group.conversation_id
    env = server_env(
        database_url,
        instance_path,
        REDIS_URL=redis_url,
        LOGIN_RATE_LIMIT="1000 per minute",
        SPEAK_CACHE="true",
    )
    with ExitStack() as stack:
        cluster = Cluster(stack, env, tmp_path)
        alice = stack.enter_context(cluster.device("b", "alice"))
        bob = stack.enter_context(cluster.device("a", "bob", connect=False))
        direct = alice.post("/api/v1/conversations", {"user_id": bob_id}).json()["conversation"]["id"]
        # Warm process B: its first send starts the listener, the ones after it use the cache.
        for conversation_id in (group_chat, direct):
            assert alice.send(conversation_id, "warm")["ok"]
        time.sleep(0.3)
        for conversation_id in (group_chat, direct, group_chat, direct):
            assert alice.send(conversation_id, "warm")["ok"]

        # A member mute by the group's owner on process A, and its lifting.
        mute = f"{cluster.url}/api/v1/groups/{group_id}/members/{alice_id}/mute"
        assert bob.http.put(mute, json={"minutes": 5}, timeout=10).status_code == 200
        assert refused_within(alice, group_chat, "member_muted") <= 1.0
        assert bob.http.put(mute, json={"minutes": 0}, timeout=10).status_code == 200
        assert allowed_within(alice, group_chat) <= 1.0

        # A block on process A.
        assert bob.post("/api/v1/blocks", {"user_id": alice_id}).status_code == 204
        assert refused_within(alice, direct, "blocked") <= 1.0
        assert bob.delete(f"/api/v1/blocks/{alice_id}").status_code == 204
        assert allowed_within(alice, direct) <= 1.0

        # A site mute from the admin console on process A.
        admin = stack.enter_context(requests.Session())
        pin(admin, "a")
        signed_in = admin.post(
            f"{cluster.url}/api/v1/auth/login", json={"username": "root", "password": PASSWORD}, timeout=10
        )
        assert signed_in.ok
        page = admin.get(f"{cluster.url}/admin/user/details/?id={alice_id}", timeout=10)
        response = admin.post(
            f"{cluster.url}/admin/user/{alice_id}/mute",
            data={"csrf_token": csrf_of(page), "reason": "flood", "minutes": "30"},
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 302
        assert refused_within(alice, direct, "muted") <= 1.0
        assert refused(alice.send(group_chat, "and here?")) == "muted"
