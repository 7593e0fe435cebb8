"""Server API messages: sending as a user, system notices (to users' notice conversations and to
groups), a conversation's history, a user's conversations, recall — and the notice conversation
being read-only everywhere a user could write."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import gevent
import pytest
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql

from app.auth import services as auth_services
from app.extensions import db
from app.groups.services import create_group
from app.models import AuditLog, Conversation, ConversationMember, Message
from app.notices import send_user_notices
from tests.chat_helpers import connect, new_client_msg_id
from tests.pg_locks import until_waiting_on_a_lock

API = "/api/server/v1"


def _count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _send(client, headers, **fields):
    payload = {"client_msg_id": new_client_msg_id(), "body": {"type": "txt", "msg": "hi"}, **fields}
    return client.post(f"{API}/messages", json=payload, headers=headers)


def _fresh_state(http) -> dict:
    """Each conversation's summary and messages, as a device that loads everything now sees."""
    state = {}
    for summary in http.get("/api/v1/conversations").get_json()["conversations"]:
        page = http.get(f"/api/v1/conversations/{summary['id']}/messages?limit=100").get_json()
        summary = {key: value for key, value in summary.items() if key != "online"}
        state[summary["id"]] = (summary, {m["seq"]: m for m in page["messages"]})
    return state


def _replayed(http, cursor: str, state: dict) -> dict:
    """`state` brought up to date with /sync pages from `cursor`, as a client applies them."""
    summaries = {cid: summary for cid, (summary, _) in state.items()}
    messages = {cid: dict(msgs) for cid, (_, msgs) in state.items()}
    while True:
        page = http.get(f"/api/v1/sync?cursor={cursor}&limit=2").get_json()
        for message in page["messages"]:
            messages.setdefault(message["conversation_id"], {})[message["seq"]] = message
        for summary in page["conversations"]:
            summaries[summary["id"]] = {key: value for key, value in summary.items() if key != "online"}
        cursor = page["cursor"]
        if not page["has_more"]:
            break
    return {cid: (summaries[cid], messages.get(cid, {})) for cid in summaries}


# --- send as a user ---------------------------------------------------------------------


def test_send_as_user_reaches_the_recipient_live_and_a_resend_is_the_same_message(app, client, pair, api_key):
    alice_phone, alice_laptop, bob, conversation_id = pair
    headers = api_key("messages")
    payload = {
        "from_user_id": alice_phone.user_id,
        "to_user_id": bob.user_id,
        "client_msg_id": "server-msg-0001",
    }
    response = _send(client, headers, **payload)
    assert response.status_code == 201, response.get_json()
    message = response.get_json()["message"]
    assert response.get_json()["duplicate"] is False
    assert message["conversation_id"] == conversation_id
    assert message["sender"]["id"] == alice_phone.user_id
    assert [m["seq"] for m in bob.received("message:new")] == [message["seq"]]
    assert [m["seq"] for m in alice_laptop.received("message:new")] == [message["seq"]]

    again = _send(client, headers, **payload)
    assert again.status_code == 200
    assert again.get_json() == {"message": message, "duplicate": True}
    assert bob.received("message:new") == []
    assert _count(app, Message, Message.conversation_id == conversation_id) == 1


def test_send_as_user_with_reply_and_into_a_group(app, client, make_user, befriend, login, api_key):
    owner, friend, stranger = make_user("owner"), make_user("friend"), make_user("stranger")
    befriend(owner, friend)
    with app.app_context():
        group = create_group(owner, "Team", [friend])
        group_id, conversation_id = group.id, group.conversation_id
    member = connect(app, login("friend"))
    headers = api_key("messages")
    first = _send(client, headers, from_user_id=owner, group_id=group_id)
    assert first.status_code == 201, first.get_json()
    seq = first.get_json()["message"]["seq"]
    reply = _send(client, headers, from_user_id=friend, group_id=group_id, reply_to=seq, mentions=[owner])
    assert reply.status_code == 201, reply.get_json()
    assert reply.get_json()["message"]["reply"]["seq"] == seq
    assert reply.get_json()["message"]["mentions"] == [owner]
    assert [m["conversation_id"] for m in member.received("message:new")] == [conversation_id] * 2

    outsider = _send(client, headers, from_user_id=stranger, group_id=group_id)
    assert outsider.status_code == 403
    assert outsider.get_json()["error"]["code"] == "not_member"
    assert _send(client, headers, from_user_id=owner, group_id=999999).status_code == 404


def test_send_as_user_refusals_store_nothing(app, client, make_user, befriend, api_key):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    admin = make_user("boss", is_admin=True)
    befriend(alice, bob)
    headers = api_key("messages")

    not_friends = _send(client, headers, from_user_id=alice, to_user_id=carol)
    assert not_friends.status_code == 403
    assert not_friends.get_json()["error"]["code"] == "not_friends"
    assert _count(app, Conversation, Conversation.direct_key == f"{alice}:{carol}") == 0

    bad_bodies = [
        {"from_user_id": alice, "to_user_id": bob, "body": {"type": "txt", "msg": ""}},
        {"from_user_id": alice, "to_user_id": bob, "body": {"type": "html", "msg": "<b>x</b>"}},
        {"from_user_id": alice, "to_user_id": bob, "group_id": 1},
        {"from_user_id": alice},
        {"from_user_id": alice, "to_user_id": alice},
        {"from_user_id": "1", "to_user_id": bob},
        {"from_user_id": alice, "to_user_id": bob, "client_msg_id": "bad id!"},
    ]
    for fields in bad_bodies:
        response = _send(client, headers, **fields)
        assert response.status_code == 400, (fields, response.get_json())
        assert response.get_json()["error"]["code"] == "invalid_input"
    assert _send(client, headers, from_user_id=999999, to_user_id=bob).status_code == 404
    assert _count(app, Message) == 0
    # Never as an administrator or the robot, even to a friend.
    robot = make_user("robot", is_bot=True)
    befriend(admin, bob)
    for sender in (admin, robot):
        protected = _send(client, headers, from_user_id=sender, to_user_id=bob)
        assert (protected.status_code, protected.get_json()["error"]["code"]) == (409, "protected_account")
    assert _count(app, Message) == 0

    from app.moderation.services import mute_user

    with app.app_context():
        mute_user(admin, alice, "spam", None)
    muted = _send(client, headers, from_user_id=alice, to_user_id=bob)
    assert muted.status_code == 403
    assert muted.get_json()["error"]["code"] == "muted"
    assert _count(app, Message) == 0


# --- notices ----------------------------------------------------------------------------


def test_notices_reach_every_device_live_and_sync_equals_a_fresh_load(app, client, make_user, login, api_key):
    users = [make_user(name) for name in ("ann", "ben", "cat")]
    devices = {
        uid: [connect(app, login(name)), connect(app, login(name))]
        for uid, name in zip(users, ("ann", "ben", "cat"), strict=True)
    }
    third = login("ann")  # a device that was away
    before = _fresh_state(third)
    cursor = third.get("/api/v1/conversations").get_json()["cursor"]
    for pair_of in devices.values():
        for device in pair_of:
            device.received()

    headers = api_key("messages")
    response = client.post(
        f"{API}/notices", json={"text": "Maintenance at 22:00", "user_ids": users}, headers=headers
    )
    assert response.status_code == 201, response.get_json()
    results = response.get_json()["notices"]
    assert [item["user_id"] for item in results] == users
    assert len({item["conversation_id"] for item in results}) == 3
    for item in results:
        assert item["new"] is True
        assert item["message"]["sender"] is None
        assert item["message"]["body"] == {
            "type": "system",
            "event": "notice",
            "actor_id": None,
            "text": "Maintenance at 22:00",
        }
        for device in devices[item["user_id"]]:
            events = device.socket.get_received()
            names = [event["name"] for event in events]
            assert names.index("conversation:new") < names.index("message:new")
            new = [event["args"][0] for event in events if event["name"] == "conversation:new"]
            assert new[0]["id"] == item["conversation_id"] and new[0]["kind"] == "notice"
            delivered = [event["args"][0] for event in events if event["name"] == "message:new"]
            assert delivered == [item["message"]]

    # A second notice goes into the same conversations.
    second = client.post(f"{API}/notices", json={"text": "Done", "user_ids": users[:1]}, headers=headers)
    assert second.get_json()["notices"][0]["conversation_id"] == results[0]["conversation_id"]
    assert second.get_json()["notices"][0]["message"]["seq"] == 2

    fresh = _fresh_state(third)
    assert list(fresh) == [results[0]["conversation_id"]]
    summary, messages = fresh[results[0]["conversation_id"]]
    assert summary["kind"] == "notice" and summary["unread"] == 2 and summary["peer"] is None
    assert [m["body"]["text"] for m in messages.values()] == ["Maintenance at 22:00", "Done"]
    assert _replayed(third, cursor, before) == fresh


def test_notice_resend_with_client_msg_id_stores_nothing_new(app, client, make_user, api_key):
    users = [make_user(), make_user()]
    headers = api_key("messages")
    body = {"text": "Welcome", "user_ids": users[:1], "client_msg_id": "notice-welcome-1"}
    first = client.post(f"{API}/notices", json=body, headers=headers).get_json()["notices"]
    # The same id to both: the first user already has it, the second gets it now.
    response = client.post(f"{API}/notices", json={**body, "user_ids": users}, headers=headers)
    assert response.status_code == 201
    again = response.get_json()["notices"]
    assert again[0] == {**first[0], "new": False}
    assert again[1]["new"] is True
    all_again = client.post(f"{API}/notices", json={**body, "user_ids": users}, headers=headers)
    assert all_again.status_code == 200
    assert [item["new"] for item in all_again.get_json()["notices"]] == [False, False]
    assert _count(app, Message) == 2


def test_five_hundred_users_in_one_call_with_a_fixed_number_of_statements(
    app, client, api_key, count_queries
):
    with app.app_context():
        ids = []
        for number in range(505):
            ids.append(auth_services.create_user(f"bulk{number}", None).id)
        db.session.commit()
    headers = api_key("messages")

    def notify(user_ids):
        with count_queries() as statements:
            response = client.post(
                f"{API}/notices", json={"text": "Hello", "user_ids": user_ids}, headers=headers
            )
        assert response.status_code == 201, response.get_json()
        return response.get_json()["notices"], len(statements)

    few, few_statements = notify(ids[500:505])
    many, many_statements = notify(ids[:500])
    assert len(many) == 500 and all(item["new"] for item in many)
    assert many_statements == few_statements
    assert _count(app, Conversation, Conversation.kind == "notice") == 505
    assert _count(app, ConversationMember) == 505
    # Their conversations exist now: the next call takes the same number of statements again.
    _, again_statements = notify(ids[:500])
    _, again_few = notify(ids[500:505])
    assert again_statements == again_few
    assert _count(app, Message) == 1010


def test_missing_notice_conversations_are_made_in_user_id_order(app, make_user):
    first, second, third = make_user(), make_user(), make_user()
    with app.app_context():
        answers = send_user_notices([third, first, second], "Hello")
    assert [item["user_id"] for item in answers] == [third, first, second]  # answered as asked
    made = {item["user_id"]: item["conversation_id"] for item in answers}
    # Inserted in one global order (user id), so the ids the database gave follow it.
    assert [made[first], made[second], made[third]] == sorted(made.values())


@pytest.mark.postgresql
def test_first_notices_to_the_same_users_in_opposite_orders_do_not_deadlock(app, make_user):
    """Another call (here a connection of the test's) has made user 1's notice conversation and
    not committed yet; a call for [2, 1] waits for it without holding user 2's key, so when the
    other call goes on to make user 2's, it is not waiting on the call waiting on it."""
    one, two = make_user(), make_user()
    now = datetime.now(UTC)
    conversations = Conversation.__table__
    insert = (
        postgresql.insert(conversations)
        .on_conflict_do_nothing(index_elements=["direct_key"])
        .returning(conversations.c.id)
    )

    def row(user_id):
        key = f"notice:{user_id}"
        return {
            "kind": "notice",
            "direct_key": key,
            "last_seq": 0,
            "stream_pos": 0,
            "last_activity_at": now,
            "created_at": now,
        }

    outcome = {}

    def notify():
        try:
            with app.app_context():
                outcome["answers"] = send_user_notices([two, one], "Hello")
        except Exception as error:  # noqa: BLE001 - reported by the test below
            outcome["error"] = error

    with app.app_context(), db.engine.connect() as other:
        made = [other.execute(insert.values(row(one))).scalar_one()]
        thread = threading.Thread(target=notify)
        thread.start()
        until_waiting_on_a_lock(app, thread, outcome)  # the call waits on user 1's key
        made.append(other.execute(insert.values(row(two))).scalar_one())
        other.commit()
    thread.join(30)
    assert "error" not in outcome, outcome
    assert [item["conversation_id"] for item in outcome["answers"]] == [made[1], made[0]]
    assert [item["message"]["seq"] for item in outcome["answers"]] == [1, 1]


def test_more_than_five_hundred_users_or_an_unknown_one_is_refused_and_nothing_is_written(
    app, client, make_user, api_key
):
    user = make_user()
    headers = api_key("messages")
    too_many = client.post(
        f"{API}/notices", json={"text": "x", "user_ids": list(range(1, 502))}, headers=headers
    )
    assert too_many.status_code == 400
    assert "user_ids" in too_many.get_json()["error"]["fields"]
    unknown = client.post(f"{API}/notices", json={"text": "x", "user_ids": [user, 999999]}, headers=headers)
    assert unknown.status_code == 400
    assert "999999" in unknown.get_json()["error"]["fields"]["user_ids"]
    for body in (
        {"text": "", "user_ids": [user]},
        {"text": "x" * 2001, "user_ids": [user]},
        {"text": "x", "user_ids": []},
        {"text": "x"},
        {"text": "x", "user_ids": [user], "group_id": 1},
        {"text": "x", "user_ids": [user], "client_msg_id": "no"},
    ):
        response = client.post(f"{API}/notices", json=body, headers=headers)
        assert response.status_code == 400, body
    assert _count(app, Message) == 0
    assert _count(app, Conversation) == 0


def test_a_notice_to_a_group_is_one_system_message_to_its_members(
    app, client, make_user, befriend, login, api_key
):
    owner, member = make_user("owner"), make_user("member")
    befriend(owner, member)
    with app.app_context():
        group = create_group(owner, "Team", [member])
        group_id, conversation_id = group.id, group.conversation_id
    device = connect(app, login("member"))
    device.received()
    headers = api_key("messages")
    body = {"text": "Office closed Friday", "group_id": group_id, "client_msg_id": "group-notice-1"}
    response = client.post(f"{API}/notices", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    (item,) = response.get_json()["notices"]
    assert item["group_id"] == group_id and item["conversation_id"] == conversation_id
    assert item["message"]["body"]["event"] == "notice"
    assert device.received("message:new") == [item["message"]]
    again = client.post(f"{API}/notices", json=body, headers=headers)
    assert again.status_code == 200
    assert again.get_json()["notices"][0] == {**item, "new": False}
    assert (
        client.post(f"{API}/notices", json={"text": "x", "group_id": 999999}, headers=headers).status_code
        == 404
    )


def test_nobody_can_write_into_the_notice_conversation(app, client, make_user, login, api_key):
    user = make_user("ann")
    response = client.post(f"{API}/notices", json={"text": "Read me", "user_ids": [user]}, headers=api_key())
    conversation_id = response.get_json()["notices"][0]["conversation_id"]
    device = connect(app, login("ann"))

    url = f"/api/v1/conversations/{conversation_id}"
    rest = device.http.post(
        f"{url}/messages", json={"client_msg_id": new_client_msg_id(), "body": {"type": "txt", "msg": "hey"}}
    )
    assert rest.status_code == 403
    assert rest.get_json()["error"]["code"] == "read_only"
    ack = device.send(conversation_id, "hey")
    assert ack["ok"] is False and ack["error"]["code"] == "read_only"
    assert (
        device.http.put(f"{url}/messages/1/reactions/%F0%9F%91%8D", json={}).get_json()["error"]["code"]
        == "read_only"
    )
    assert device.http.post(f"{url}/messages/1/recall", json={}).status_code == 403
    assert device.http.put(f"/api/v1/conversations/{conversation_id}/pins/1", json={}).status_code == 403
    assert device.emit("typing", {"conversation_id": conversation_id})["error"]["code"] == "read_only"
    assert _count(app, Message) == 1

    # Reading it is fine: read marks, flags.
    assert device.http.post(f"{url}/read", json={"seq": 1}).status_code == 200
    flags = device.http.patch(url, json={"pinned": True, "muted": True})
    assert flags.status_code == 200 and flags.get_json()["conversation"]["unread"] == 0
    # Taken off the list, it comes back with the next notice.
    assert device.http.patch(url, json={"hidden": True}).status_code == 200
    assert device.http.get(url).status_code == 404
    client.post(f"{API}/notices", json={"text": "Again", "user_ids": [user]}, headers=api_key())
    back = device.http.get(url).get_json()["conversation"]
    assert back["last_message"]["body"]["text"] == "Again" and back["unread"] == 1
    # Nobody can open one: direct conversations only name another user.
    assert device.http.post("/api/v1/conversations", json={"user_id": user}).status_code == 400


# --- history, a user's conversations, recall --------------------------------------------


def test_history_pages_by_seq_without_a_members_window(app, client, pair, api_key):
    alice_phone, _, _, conversation_id = pair
    for number in range(5):
        alice_phone.send(conversation_id, f"m{number}")
    headers = api_key("read")
    url = f"{API}/conversations/{conversation_id}/messages"
    newest = client.get(f"{url}?limit=2", headers=headers).get_json()
    assert [m["seq"] for m in newest["messages"]] == [4, 5] and newest["has_more"] is True
    assert newest["conversation"] == {"id": conversation_id, "kind": "direct", "last_seq": 5}
    older = client.get(f"{url}?limit=2&before=4", headers=headers).get_json()
    assert [m["seq"] for m in older["messages"]] == [2, 3] and older["has_more"] is True
    after = client.get(f"{url}?after=1&limit=3", headers=headers).get_json()
    assert [m["seq"] for m in after["messages"]] == [2, 3, 4] and after["has_more"] is True
    between = client.get(f"{url}?after=1&before=4", headers=headers).get_json()
    assert [m["seq"] for m in between["messages"]] == [2, 3] and between["has_more"] is False
    assert newest["messages"][0]["sender"]["id"] == alice_phone.user_id
    for bad in ("before=abc", "after=-1", "limit=0", "limit=101"):
        response = client.get(f"{url}?{bad}", headers=headers)
        assert response.status_code == 400, bad
        assert response.get_json()["error"]["code"] == "invalid_input"
    assert client.get(f"{API}/conversations/999999/messages", headers=headers).status_code == 404


def test_a_users_conversations_as_the_user_sees_them(app, client, pair, api_key):
    alice_phone, _, bob, conversation_id = pair
    client.post(f"{API}/notices", json={"text": "Hi", "user_ids": [bob.user_id]}, headers=api_key("messages"))
    alice_phone.send(conversation_id, "hello")
    headers = api_key("read")
    page = client.get(f"{API}/users/{bob.user_id}/conversations", headers=headers).get_json()
    assert page == {**bob.http.get("/api/v1/conversations").get_json(), "cursor": page["cursor"]}
    assert sorted(item["kind"] for item in page["conversations"]) == ["direct", "notice"]
    first = client.get(f"{API}/users/{bob.user_id}/conversations?limit=1", headers=headers).get_json()
    rest = client.get(
        f"{API}/users/{bob.user_id}/conversations?limit=1&cursor={first['next']}", headers=headers
    )
    assert [first["conversations"][0]["id"], rest.get_json()["conversations"][0]["id"]] == [
        item["id"] for item in page["conversations"]
    ]
    assert client.get(f"{API}/users/999999/conversations", headers=headers).status_code == 404
    bad = client.get(f"{API}/users/{bob.user_id}/conversations?cursor=!!", headers=headers)
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "invalid_cursor"


def test_recall_as_the_service_reaches_members_and_is_audited(app, client, pair, api_key):
    alice_phone, alice_laptop, bob, conversation_id = pair
    seq = alice_phone.send(conversation_id, "oops")["message"]["seq"]
    for device in (alice_phone, alice_laptop, bob):
        device.received()
    headers = api_key("messages")
    url = f"{API}/conversations/{conversation_id}/messages"
    response = client.post(f"{url}/{seq}/recall", headers=headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()["message"]["body"]
    assert body["recalled"] is True and body["by"] == "admin" and body["by_id"] is None
    for device in (alice_phone, alice_laptop, bob):
        assert [m["seq"] for m in device.received("message:recalled")] == [seq]
    assert (
        client.post(f"{url}/{seq}/recall", headers=headers).get_json()["error"]["code"] == "already_recalled"
    )
    assert client.post(f"{url}/99/recall", headers=headers).status_code == 404
    assert client.post(f"{API}/conversations/999999/messages/1/recall", headers=headers).status_code == 404
    with app.app_context():
        audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "api_recall"))
        assert audit.details["seq"] == seq and audit.details["api_key_id"] is not None


def test_scopes(app, client, pair, api_key):
    alice_phone, _, bob, conversation_id = pair
    read_only, users_only = api_key("read"), api_key("users")
    send = {"from_user_id": alice_phone.user_id, "to_user_id": bob.user_id}
    assert _send(client, read_only, **send).status_code == 403
    notice = {"text": "x", "user_ids": [bob.user_id]}
    assert client.post(f"{API}/notices", json=notice, headers=read_only).status_code == 403
    assert (
        client.post(f"{API}/conversations/{conversation_id}/messages/1/recall", headers=read_only).status_code
        == 403
    )
    assert (
        client.get(f"{API}/conversations/{conversation_id}/messages", headers=users_only).status_code == 403
    )
    assert client.get(f"{API}/users/{bob.user_id}/conversations", headers=users_only).status_code == 403
    assert (
        client.get(f"{API}/conversations/{conversation_id}/messages", headers=api_key("messages")).status_code
        == 200
    )
    assert client.get(f"{API}/conversations/{conversation_id}/messages").status_code == 401
    assert _count(app, Message) == 0


# --- second review: what a key may read, refused first sends, codes ---------------------------


def test_a_read_key_cannot_read_an_administrators_or_the_robots_conversations(
    app, client, make_user, befriend, login, api_key
):
    from app.chat.conversations import open_direct

    admin, alice = make_user("boss", is_admin=True), make_user("alice")
    robot = make_user("robot", is_bot=True)
    befriend(admin, alice)
    with app.app_context():
        conversation_id = open_direct(admin, alice)[0]["id"]
        robot_chat = open_direct(robot, alice)[0]["id"]
    login("boss").post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"client_msg_id": new_client_msg_id(), "body": {"type": "txt", "msg": "private"}},
    )
    headers = api_key("read")
    for user_id in (admin, robot):
        listing = client.get(f"{API}/users/{user_id}/conversations", headers=headers)
        assert (listing.status_code, listing.get_json()["error"]["code"]) == (409, "protected_account")
    history = client.get(f"{API}/conversations/{conversation_id}/messages", headers=headers)
    assert (history.status_code, history.get_json()["error"]["code"]) == (409, "protected_account")
    assert "private" not in history.get_data(as_text=True)
    # The other member's own list and a chat with the robot stay readable.
    assert client.get(f"{API}/users/{alice}/conversations", headers=headers).status_code == 200
    assert client.get(f"{API}/conversations/{robot_chat}/messages", headers=headers).status_code == 200


def _direct_conversations(app, a: int, b: int) -> int:
    low, high = sorted((a, b))
    return _count(app, Conversation, Conversation.direct_key == f"{low}:{high}")


def test_a_refused_first_send_leaves_no_conversation_and_announces_none(
    app, client, make_user, login, api_key
):
    """A message to the robot needs no friendship, so its first one opens the conversation."""
    from app.webhooks import manage
    from app.wordfilter import services as words
    from tests.fake_integrator import FakeIntegrator

    alice, root = make_user("alice"), make_user("root", is_admin=True)
    robot = make_user("robot", is_bot=True)
    with app.app_context():
        words.create_list(root, "blocked", "reject", True, "badword")
    device = connect(app, login("alice"))
    device.received()
    headers = api_key("messages")
    blocked = _send(
        client, headers, from_user_id=alice, to_user_id=robot, body={"type": "txt", "msg": "badword"}
    )
    assert (blocked.status_code, blocked.get_json()["error"]["code"]) == (400, "content_blocked")
    bad_reply = _send(client, headers, from_user_id=alice, to_user_id=robot, reply_to=1)
    assert bad_reply.status_code in (400, 404), bad_reply.get_json()
    assert _direct_conversations(app, alice, robot) == 0

    fake = FakeIntegrator().start()
    try:
        with app.app_context():
            manage.create_hook(None, "policy", fake.url, ["message.before_send"], secret=fake.secret)
        fake.decision = {"action": "reject"}
        rejected = _send(client, headers, from_user_id=alice, to_user_id=robot)
        assert (rejected.status_code, rejected.get_json()["error"]["code"]) == (403, "rejected_by_policy")
        assert _direct_conversations(app, alice, robot) == 0
        assert _count(app, Message) == 0
        assert device.received() == []  # no conversation:new, nothing at all
        # Allowed: the conversation and the message come together, the conversation first.
        fake.decision = {"action": "allow"}
        sent = _send(client, headers, from_user_id=alice, to_user_id=robot)
        assert sent.status_code == 201, sent.get_json()
        check = fake.events("message.before_send")[-1]
        assert check.payload["data"]["conversation"] == {"id": None, "kind": "direct"}
    finally:
        fake.stop()
    assert _direct_conversations(app, alice, robot) == 1
    conversation_id = sent.get_json()["message"]["conversation_id"]
    events = [(event["name"], event["args"][0]) for event in device.socket.get_received()]
    assert [name for name, _ in events] == ["conversation:new", "message:new"]
    assert events[0][1]["id"] == conversation_id
    assert _count(app, Message, Message.conversation_id == conversation_id, Message.sender_id == alice) == 1
    # A resend is the stored message; a second message goes into the same conversation.
    again = _send(
        client,
        headers,
        from_user_id=alice,
        to_user_id=robot,
        client_msg_id=sent.get_json()["message"]["client_msg_id"],
    )
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    assert _send(client, headers, from_user_id=alice, to_user_id=robot).status_code == 201
    assert _direct_conversations(app, alice, robot) == 1
    # The robot answers both in the background: let it finish here, not in the next test.
    deadline = time.monotonic() + 10
    while _count(app, Message, Message.sender_id == robot) < 2:
        assert time.monotonic() < deadline, "the robot did not answer"
        gevent.sleep(0.02)


def test_a_banned_sender_is_account_banned_and_a_dissolved_group_notice_is_409(
    app, client, make_user, befriend, api_key
):
    from app.groups.services import dissolve
    from app.moderation.services import ban_user

    alice, bob, root = make_user("alice"), make_user("bob"), make_user("root", is_admin=True)
    befriend(alice, bob)
    with app.app_context():
        ban_user(root, alice, "spam")
        group = create_group(bob, "Team", [])
        group_id = group.id
        dissolve(bob, group_id)
    headers = api_key("messages")
    banned = _send(client, headers, from_user_id=alice, to_user_id=bob)
    assert (banned.status_code, banned.get_json()["error"]["code"]) == (403, "account_banned")
    notice = client.post(f"{API}/notices", json={"text": "x", "group_id": group_id}, headers=headers)
    assert (notice.status_code, notice.get_json()["error"]["code"]) == (409, "group_dissolved")
