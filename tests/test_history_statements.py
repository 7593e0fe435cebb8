"""What a history page costs the database, and that it keeps its rules while it costs little:
the sign-in is one statement that yields the device and its user (read once per request), a
page with messages is one more, and the membership window still bounds every page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import delete, select, update

from app.auth import services as auth_services
from app.chat.conversations import open_direct
from app.chat.send import send_message
from app.extensions import db
from app.groups.services import create_group, kick
from app.models import DeviceSession, Sanction, User, utcnow
from tests.chat_helpers import new_client_msg_id

# A statement that reads a user row by itself (Flask-Login's loader used to do this after the
# device query had already joined the same row).
USER_READ_AGAIN = re.compile(r"FROM users\s+WHERE users\.id", re.IGNORECASE)


def send(app, user_id: int, conversation_id: int, text: str = "hi") -> int:
    with app.app_context():
        message, _ = send_message(user_id, conversation_id, new_client_msg_id(), {"type": "txt", "msg": text})
        return message["seq"]


@pytest.fixture
def chat(app, make_user, befriend, login):
    """Alice (signed in) and Bob, friends with a direct conversation."""
    alice_id, bob_id = make_user("alice"), make_user("bob")
    befriend(alice_id, bob_id)
    with app.app_context():
        summary, _ = open_direct(alice_id, bob_id)
    return alice_id, bob_id, summary["id"], login("alice")


def page(client, count_queries, url: str):
    with count_queries() as statements:
        response = client.get(url)
    return response, statements


QUERIES = [
    "",
    "?limit=5",
    "?before_seq=9",
    "?after_seq=3",
    "?after_seq=3&before_seq=9",
    "?after_seq=2&limit=3",
]


@pytest.mark.parametrize("query", QUERIES)
def test_a_page_is_the_sign_in_and_one_statement_however_long_the_history(chat, app, count_queries, query):
    alice_id, bob_id, conversation_id, client = chat
    url = f"/api/v1/conversations/{conversation_id}/messages{query}"
    counts = []
    for total in (12, 120):
        while send(app, alice_id if total % 2 else bob_id, conversation_id) < total:
            pass
        response, statements = page(client, count_queries, url)
        assert response.status_code == 200
        assert response.get_json()["messages"]
        counts.append(len(statements))
        assert sum("FROM device_sessions" in statement for statement in statements) == 1
    assert counts == [2, 2]


@pytest.mark.parametrize(
    "path", ["/api/v1/auth/me", "/api/v1/conversations", "/api/v1/sync?cursor=0", "{messages}"]
)
def test_a_request_reads_its_user_once(chat, app, count_queries, path):
    alice_id, _, conversation_id, client = chat
    send(app, alice_id, conversation_id)
    response, statements = page(
        client, count_queries, path.format(messages=f"/api/v1/conversations/{conversation_id}/messages")
    )
    assert response.status_code == 200
    assert [s for s in statements if USER_READ_AGAIN.search(s)] == []
    assert sum("FROM device_sessions" in statement for statement in statements) == 1


def test_sliding_the_session_forward_reads_nothing_again(chat, app, count_queries):
    alice_id, _, conversation_id, client = chat
    send(app, alice_id, conversation_id, "still here")
    stale = utcnow() - timedelta(minutes=5)
    with app.app_context():
        db.session.execute(update(DeviceSession).values(last_seen_at=stale))
        db.session.execute(update(User).where(User.id == alice_id).values(last_seen_at=stale))
        db.session.commit()
    response, statements = page(client, count_queries, f"/api/v1/conversations/{conversation_id}/messages")
    assert response.status_code == 200
    assert [m["body"]["msg"] for m in response.get_json()["messages"]] == ["still here"]
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    writes = [s for s in statements if s.lstrip().upper().startswith("UPDATE")]
    assert len(reads) == 2 and len(writes) == 2
    with app.app_context():
        device = db.session.scalar(select(DeviceSession))
        assert device.last_seen_at > stale
        assert device.expires_at > utcnow() + timedelta(days=29)
        assert db.session.get(User, alice_id).last_seen_at > stale
    # The next request finds the session fresh and writes nothing.
    response, statements = page(client, count_queries, f"/api/v1/conversations/{conversation_id}/messages")
    assert response.status_code == 200 and len(statements) == 2


def test_a_ban_is_judged_with_the_clock_of_each_request(chat, app, monkeypatch):
    """The sign-in statement is built once; the time it compares bans and expiries with is not."""
    alice_id, _, conversation_id, client = chat
    url = f"/api/v1/conversations/{conversation_id}/messages"
    assert client.get(url).status_code == 200
    now = utcnow()
    with app.app_context():
        db.session.add(Sanction(user_id=alice_id, kind="ban", expires_at=now + timedelta(hours=1)))
        db.session.commit()
    with monkeypatch.context() as later:
        later.setattr(auth_services, "utcnow", lambda: now + timedelta(hours=2))
        assert client.get(url).status_code == 200  # by then the ban is over
    refused = client.get(url)
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "unauthenticated"


def test_a_revoked_device_gets_no_page(chat, app, login):
    _, _, conversation_id, client = chat
    other = login("alice")
    assert other.post("/api/v1/auth/devices/sign-out-others", json={}).get_json() == {"signed_out_devices": 1}
    assert client.get(f"/api/v1/conversations/{conversation_id}/messages").status_code == 401
    assert other.get(f"/api/v1/conversations/{conversation_id}/messages").status_code == 200


def test_an_empty_page_still_asks_for_the_membership(chat, app, count_queries, make_user, login):
    alice_id, _, conversation_id, client = chat
    url = f"/api/v1/conversations/{conversation_id}/messages"
    response, statements = page(client, count_queries, url)
    assert response.status_code == 200
    assert response.get_json() == {"messages": [], "has_more": False}
    assert len(statements) == 3
    send(app, alice_id, conversation_id)
    assert client.get(f"{url}?after_seq=1").get_json() == {"messages": [], "has_more": False}
    assert client.get(f"{url}?before_seq=1").get_json() == {"messages": [], "has_more": False}

    make_user("mallory")
    stranger = login("mallory")
    for target in (url, f"{url}?after_seq=0", "/api/v1/conversations/987654/messages"):
        refused = stranger.get(target)
        assert refused.status_code == 404
        assert refused.get_json()["error"]["code"] == "not_found"


def test_a_removed_member_pages_only_up_to_their_removal(app, make_user, befriend, login):
    owner_id, member_id = make_user("owner"), make_user("member")
    befriend(owner_id, member_id)
    with app.app_context():
        group = create_group(owner_id, "Window", [member_id])
        group_id, conversation_id = group.id, group.conversation_id
    for number in range(6):
        send(app, owner_id, conversation_id, f"m{number}")
    with app.app_context():
        kick(owner_id, group_id, member_id)
    last_seen = send(app, owner_id, conversation_id, "after") - 1  # the removal notice
    for number in range(3):
        send(app, owner_id, conversation_id, f"later{number}")
    member = login("member")
    url = f"/api/v1/conversations/{conversation_id}/messages"

    newest = member.get(f"{url}?limit=3").get_json()
    assert [m["seq"] for m in newest["messages"]] == [last_seen - 2, last_seen - 1, last_seen]
    assert newest["messages"][-1]["body"]["event"] == "member_removed"
    assert newest["has_more"] is True
    forward = member.get(f"{url}?after_seq={last_seen - 2}").get_json()
    assert [m["seq"] for m in forward["messages"]] == [last_seen - 1, last_seen]
    assert forward["has_more"] is False
    assert member.get(f"{url}?after_seq={last_seen}").get_json() == {"messages": [], "has_more": False}
    assert (
        member.get(f"{url}?before_seq={last_seen + 3}&limit=1").get_json()["messages"][0]["seq"] == last_seen
    )

    everything = login("owner").get(f"{url}?limit=100").get_json()
    assert everything["messages"][-1]["body"]["msg"] == "later2"


def test_a_late_member_pages_only_from_when_they_joined(app, make_user, befriend, login):
    owner_id, first_id, late_id = make_user("owner"), make_user("first"), make_user("late")
    befriend(owner_id, first_id)
    befriend(owner_id, late_id)
    with app.app_context():
        group = create_group(owner_id, "Late", [first_id])
        conversation_id = group.conversation_id
    for number in range(4):
        send(app, owner_id, conversation_id, f"early{number}")
    owner = login("owner")
    assert owner.post(f"/api/v1/groups/{group.id}/members", json={"user_ids": [late_id]}).status_code == 200
    send(app, owner_id, conversation_id, "welcome")
    late = login("late")
    url = f"/api/v1/conversations/{conversation_id}/messages"
    seen = late.get(f"{url}?limit=100").get_json()
    assert [m["body"].get("msg") for m in seen["messages"]][-1] == "welcome"
    assert all("early" not in (m["body"].get("msg") or "") for m in seen["messages"])
    assert seen["has_more"] is False
    assert late.get(f"{url}?before_seq={seen['messages'][0]['seq']}").get_json() == {
        "messages": [],
        "has_more": False,
    }
    assert (
        late.get(f"{url}?after_seq=0&limit=1").get_json()["messages"][0]["seq"] == seen["messages"][0]["seq"]
    )


def test_a_page_shows_each_sender_and_a_deleted_one_as_none(chat, app):
    alice_id, bob_id, conversation_id, client = chat
    send(app, alice_id, conversation_id, "from alice")
    send(app, bob_id, conversation_id, "from bob")
    url = f"/api/v1/conversations/{conversation_id}/messages"
    messages = client.get(url).get_json()["messages"]
    assert [(m["sender"]["username"], m["body"]["msg"]) for m in messages] == [
        ("alice", "from alice"),
        ("bob", "from bob"),
    ]
    assert messages[0]["sender"] == {
        "id": alice_id,
        "username": "alice",
        "nickname": "alice",
        "avatar_url": None,
        "deleted": False,
    }
    with app.app_context():
        db.session.execute(delete(User).where(User.id == bob_id))
        db.session.commit()
    messages = client.get(url).get_json()["messages"]
    assert [m["sender"] and m["sender"]["id"] for m in messages] == [alice_id, None]
