"""The conversation list, read state, history pages and gap-free sync."""

from __future__ import annotations

import pytest

from app.auth import services as auth_services
from app.chat.conversations import add_members, stamp_members
from app.chat.conversations import open_direct as open_direct_conversation
from app.chat.send import send_message
from app.extensions import db
from app.groups.services import create_group
from app.social import services as social
from tests.chat_helpers import connect, new_client_msg_id


def send(app, user_id: int, conversation_id: int, text: str = "hi") -> dict:
    with app.app_context():
        message, _ = send_message(user_id, conversation_id, new_client_msg_id(), {"type": "txt", "msg": text})
        return message


def open_direct(app, user_id: int, peer_id: int) -> int:
    """Make the two users friends (which opens their direct conversation) and return it."""
    with app.app_context():
        if social.friendship(user_id, peer_id) is None:
            request, _ = social.send_friend_request(user_id, peer_id, "")
            social.respond_to_request(peer_id, request["id"], accept=True)
        summary, _ = open_direct_conversation(user_id, peer_id)
        return summary["id"]


@pytest.fixture
def alice(make_user, login, app):
    user_id = make_user("alice")
    return user_id, login("alice")


def test_opening_a_direct_conversation_needs_a_friend(alice, make_user, befriend):
    alice_id, client = alice
    bob_id = make_user("bob")
    refused = client.post("/api/v1/conversations", json={"user_id": bob_id})
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "not_friends"
    befriend(alice_id, bob_id)
    first = client.post("/api/v1/conversations", json={"user_id": bob_id})
    second = client.post("/api/v1/conversations", json={"user_id": bob_id})
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.get_json()["conversation"]["id"] == second.get_json()["conversation"]["id"]


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"user_id": 424242}, 404, "not_found"),
        ({"user_id": "2"}, 400, "invalid_input"),
        ({}, 400, "invalid_input"),
    ],
)
def test_opening_a_conversation_with_bad_input(alice, payload, status, code):
    _, client = alice
    response = client.post("/api/v1/conversations", json=payload)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code


def test_a_conversation_with_oneself_is_refused(alice):
    user_id, client = alice
    response = client.post("/api/v1/conversations", json={"user_id": user_id})
    assert response.get_json()["error"]["code"] == "invalid_peer"


def test_the_list_orders_by_activity_with_pinned_first_and_counts_unread(alice, make_user, app):
    alice_id, client = alice
    peers = [make_user(f"peer{i}") for i in range(3)]
    conversations = [open_direct(app, alice_id, peer) for peer in peers]
    send(app, peers[0], conversations[0], "old")
    send(app, peers[2], conversations[2], "one")
    send(app, peers[2], conversations[2], "two")
    send(app, peers[1], conversations[1], "newest")
    listed = client.get("/api/v1/conversations").get_json()
    assert [c["id"] for c in listed["conversations"]] == [
        conversations[1],
        conversations[2],
        conversations[0],
    ]
    by_id = {c["id"]: c for c in listed["conversations"]}
    assert by_id[conversations[2]]["unread"] == 2
    assert by_id[conversations[2]]["last_message"]["body"]["msg"] == "two"
    assert by_id[conversations[2]]["name"] == "peer2"
    assert by_id[conversations[2]]["peer"]["username"] == "peer2"
    assert listed["cursor"].isdigit()

    pinned = client.patch(f"/api/v1/conversations/{conversations[0]}", json={"pinned": True})
    assert pinned.get_json()["conversation"]["pinned"] is True
    order = [c["id"] for c in client.get("/api/v1/conversations").get_json()["conversations"]]
    assert order == [conversations[0], conversations[1], conversations[2]]


def test_own_messages_are_never_unread(alice, make_user, app):
    alice_id, client = alice
    bob_id = make_user("bob")
    conversation_id = open_direct(app, alice_id, bob_id)
    send(app, bob_id, conversation_id)
    send(app, alice_id, conversation_id)
    summary = client.get(f"/api/v1/conversations/{conversation_id}").get_json()["conversation"]
    assert summary["unread"] == 0
    assert summary["read_seq"] == 2


def _list_queries(client, count_queries) -> int:
    with count_queries() as statements:
        response = client.get("/api/v1/conversations")
    assert response.status_code == 200
    return len(statements)


def test_the_list_costs_the_same_queries_at_5_and_200_conversations(alice, app, count_queries):
    alice_id, client = alice
    with app.app_context():
        for index in range(200):
            peer = auth_services.create_user(f"many{index}", None)
            db.session.commit()
            request, _ = social.send_friend_request(peer.id, alice_id, "")
            social.respond_to_request(alice_id, request["id"], accept=True)
            summary, _ = open_direct_conversation(alice_id, peer.id)
            send_message(peer.id, summary["id"], new_client_msg_id(), {"type": "txt", "msg": "x"})
            if index == 4:
                at_five = _list_queries(client, count_queries)
        group = create_group(alice_id, "Group", [])
        send_message(alice_id, group.conversation_id, new_client_msg_id(), {"type": "txt", "msg": "g"})
    at_two_hundred = _list_queries(client, count_queries)
    first_page = client.get("/api/v1/conversations").get_json()
    assert len(first_page["conversations"]) == 50 and first_page["next"]
    assert at_two_hundred == at_five
    assert at_five <= 5  # the first page also counts the unread beyond it, in one query


def test_reading_moves_forward_only_and_syncs_every_device(alice, make_user, app, login):
    alice_id, _ = alice
    bob_id = make_user("bob")
    conversation_id = open_direct(app, alice_id, bob_id)
    for i in range(5):
        send(app, bob_id, conversation_id, f"m{i}")
    phone = connect(app, login("alice"))
    laptop = connect(app, login("alice"))
    bob = connect(app, login("bob"))
    for device in (phone, laptop, bob):
        device.received()
    ack = phone.emit("conversation:read", {"conversation_id": conversation_id, "seq": 3})
    state = {"conversation_id": conversation_id, "read_seq": 3, "unread": 2, "unread_mentions": 0}
    assert ack == {"ok": True, **state}
    assert laptop.received("conversation:read") == [{**state, "user_id": alice_id}]
    assert bob.received("receipt:read") == [
        {"conversation_id": conversation_id, "user_id": alice_id, "read_seq": 3}
    ]
    backwards = phone.emit("conversation:read", {"conversation_id": conversation_id, "seq": 1})
    assert backwards["read_seq"] == 3
    assert laptop.received("conversation:read") == []
    beyond = phone.emit("conversation:read", {"conversation_id": conversation_id, "seq": 999})
    assert (beyond["read_seq"], beyond["unread"]) == (5, 0)
    assert laptop.received("conversation:read")[0]["unread"] == 0
    bad = phone.emit("conversation:read", {"conversation_id": conversation_id, "seq": -1})
    assert bad["error"]["code"] == "invalid_input"


def test_read_over_rest(alice, make_user, app):
    alice_id, client = alice
    bob_id = make_user("bob")
    conversation_id = open_direct(app, alice_id, bob_id)
    send(app, bob_id, conversation_id)
    response = client.post(f"/api/v1/conversations/{conversation_id}/read", json={"seq": 1})
    assert response.get_json() == {
        "conversation_id": conversation_id,
        "read_seq": 1,
        "unread": 0,
        "unread_mentions": 0,
    }


def test_group_members_can_ask_who_has_read_a_message(app, make_user, login, befriend):
    owner_id, a_id, b_id = make_user("owner"), make_user("anna"), make_user("bert")
    befriend(owner_id, a_id)
    befriend(owner_id, b_id)
    with app.app_context():
        conversation_id = create_group(owner_id, "Readers", [a_id, b_id]).conversation_id
    message = send(app, owner_id, conversation_id, "read me")
    anna = login("anna")
    anna.post(f"/api/v1/conversations/{conversation_id}/read", json={"seq": message["seq"]})
    readers = login("owner").get(f"/api/v1/conversations/{conversation_id}/messages/{message['seq']}/readers")
    body = readers.get_json()
    assert [user["username"] for user in body["read_by"]] == ["anna"]
    assert [user["username"] for user in body["unread_by"]] == ["bert"]
    assert (
        login("bert").get(f"/api/v1/conversations/{conversation_id}/messages/99/readers").status_code == 404
    )


def test_history_pages_by_seq(alice, make_user, app):
    alice_id, client = alice
    bob_id = make_user("bob")
    conversation_id = open_direct(app, alice_id, bob_id)
    for i in range(1, 26):
        send(app, bob_id if i % 2 else alice_id, conversation_id, f"m{i}")
    url = f"/api/v1/conversations/{conversation_id}/messages"
    newest = client.get(f"{url}?limit=10").get_json()
    assert [m["seq"] for m in newest["messages"]] == list(range(16, 26))
    assert newest["has_more"] is True
    older = client.get(f"{url}?limit=10&before_seq=16").get_json()
    assert [m["seq"] for m in older["messages"]] == list(range(6, 16))
    oldest = client.get(f"{url}?limit=10&before_seq=6").get_json()
    assert [m["seq"] for m in oldest["messages"]] == [1, 2, 3, 4, 5]
    assert oldest["has_more"] is False
    after = client.get(f"{url}?after_seq=20").get_json()
    assert [m["seq"] for m in after["messages"]] == [21, 22, 23, 24, 25]
    window = client.get(f"{url}?after_seq=3&before_seq=7").get_json()
    assert [m["seq"] for m in window["messages"]] == [4, 5, 6]


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "before_seq=-1", "after_seq=1.5"])
def test_history_rejects_bad_parameters(alice, make_user, app, query):
    alice_id, client = alice
    conversation_id = open_direct(app, alice_id, make_user("bob"))
    response = client.get(f"/api/v1/conversations/{conversation_id}/messages?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_input"


def test_members_see_group_history_only_from_when_they_joined(app, make_user, login):
    owner_id, late_id = make_user("owner"), make_user("late")
    with app.app_context():
        conversation_id = create_group(owner_id, "History", []).conversation_id
    send(app, owner_id, conversation_id, "before you came")
    with app.app_context():
        add_members(conversation_id, [late_id])
        stamp_members(conversation_id, [late_id])
        db.session.commit()
    send(app, owner_id, conversation_id, "welcome")
    late = login("late")
    texts = [
        m["body"].get("msg")
        for m in late.get(f"/api/v1/conversations/{conversation_id}/messages").get_json()["messages"]
    ]
    assert texts == ["welcome"]
    summary = late.get(f"/api/v1/conversations/{conversation_id}").get_json()["conversation"]
    assert summary["unread"] == 1


def _fresh_state(client) -> dict:
    conversations = client.get("/api/v1/conversations").get_json()["conversations"]
    state = {}
    for summary in conversations:
        pages = client.get(f"/api/v1/conversations/{summary['id']}/messages?limit=100").get_json()
        state[summary["id"]] = (_comparable(summary), [m["id"] for m in pages["messages"]])
    return state


def _comparable(summary: dict) -> dict:
    kept = {key: value for key, value in summary.items() if key != "online"}
    return kept


def test_replaying_sync_ends_in_the_state_a_fresh_load_gives(alice, make_user, app, login, befriend):
    alice_id, client = alice
    bob_id, carol_id = make_user("bob"), make_user("carol")
    befriend(bob_id, carol_id)
    first = open_direct(app, alice_id, bob_id)
    for i in range(4):
        send(app, bob_id, first, f"early {i}")

    # The device's state at the moment it went offline.
    listed = client.get("/api/v1/conversations").get_json()
    cursor = listed["cursor"]
    summaries = {c["id"]: _comparable(c) for c in listed["conversations"]}
    messages = {
        c["id"]: client.get(f"/api/v1/conversations/{c['id']}/messages").get_json()["messages"]
        for c in listed["conversations"]
    }

    # Meanwhile: new messages, a new conversation, a group, and reads on another device.
    for i in range(6):
        send(app, bob_id, first, f"later {i}")
    second = open_direct(app, carol_id, alice_id)
    send(app, carol_id, second, "hello from carol")
    with app.app_context():
        group_conversation = create_group(bob_id, "Club", [alice_id, carol_id]).conversation_id
    for i in range(5):
        send(app, carol_id, group_conversation, f"club {i}")
    other_device = login("alice")
    other_device.post(f"/api/v1/conversations/{first}/read", json={"seq": 7})
    other_device.patch(f"/api/v1/conversations/{second}", json={"muted": True})

    pages = 0
    while True:
        page = client.get(f"/api/v1/sync?cursor={cursor}&limit=4").get_json()
        pages += 1
        for message in page["messages"]:
            known = messages.setdefault(message["conversation_id"], [])
            if all(m["seq"] != message["seq"] for m in known):
                known.append(message)
        for summary in page["conversations"]:
            summaries[summary["id"]] = _comparable(summary)
        cursor = page["cursor"]
        if not page["has_more"]:
            break
    assert pages >= 4

    replayed = {
        cid: (summaries[cid], [m["id"] for m in sorted(msgs, key=lambda m: m["seq"])])
        for cid, msgs in messages.items()
    }
    assert replayed == _fresh_state(client)
    assert client.get(f"/api/v1/sync?cursor={cursor}").get_json()["messages"] == []


def test_sync_does_not_leak_other_peoples_conversations(alice, make_user, app):
    _, client = alice
    bob_id, carol_id = make_user("bob"), make_user("carol")
    private = open_direct(app, bob_id, carol_id)
    send(app, bob_id, private, "secret")
    page = client.get("/api/v1/sync?cursor=0").get_json()
    assert page["messages"] == []
    assert page["conversations"] == []


@pytest.mark.parametrize("cursor", ["abc", "-1", "1" * 30])
def test_a_malformed_cursor_is_refused(alice, cursor):
    _, client = alice
    response = client.get(f"/api/v1/sync?cursor={cursor}")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_cursor"


def test_presence_of_users(alice, make_user, app, login, befriend):
    alice_id, client = alice
    bob_id = make_user("bob")
    befriend(alice_id, bob_id)
    connect(app, login("bob"))
    listed = client.get(f"/api/v1/presence?user_ids={alice_id},{bob_id}").get_json()["presence"]
    online = {entry["user_id"]: entry["online"] for entry in listed}
    assert online == {alice_id: False, bob_id: True}
    assert client.get("/api/v1/presence?user_ids=a,b").status_code == 400


def test_presence_events_reach_direct_peers(alice, make_user, app, login):
    alice_id, _ = alice
    bob_id = make_user("bob")
    open_direct(app, alice_id, bob_id)
    watcher = connect(app, login("alice"))
    watcher.received()
    bob = connect(app, login("bob"))
    assert watcher.received("presence") == [{"user_id": bob_id, "online": True, "last_seen_at": None}]
    bob.socket.disconnect()
    offline = watcher.received("presence")
    assert [(e["user_id"], e["online"]) for e in offline] == [(bob_id, False)]
    assert offline[0]["last_seen_at"] is not None
