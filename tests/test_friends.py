"""Finding people, friend requests, friends, remarks, blocks — and who may chat directly."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import FriendRequest, Friendship, Sanction
from tests.chat_helpers import connect


@pytest.fixture
def people(app, make_user, login):
    ids = {name: make_user(name) for name in ("alice", "bob", "carol")}
    clients = {name: login(name) for name in ids}
    return ids, clients


def error_code(response) -> str:
    return response.get_json()["error"]["code"]


def request_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(FriendRequest.id)))


def test_search_finds_by_username_or_nickname_in_any_case(app, make_user, login):
    make_user("alice")
    make_user("Zhang_wei", nickname="张伟 Wei")
    make_user("weirdo")
    banned = make_user("weibanned")
    with app.app_context():
        db.session.add(Sanction(user_id=banned, kind="ban"))
        db.session.commit()
    client = login("alice")
    found = client.get("/api/v1/users/search?q=WEI").get_json()
    assert [u["username"] for u in found["users"]] == ["weirdo", "Zhang_wei"]
    assert client.get("/api/v1/users/search?q=张伟").get_json()["users"][0]["username"] == "Zhang_wei"
    first = client.get("/api/v1/users/search?q=wei&limit=1").get_json()
    assert [u["username"] for u in first["users"]] == ["weirdo"]
    second = client.get(f"/api/v1/users/search?q=wei&limit=1&after={first['next']}").get_json()
    assert [u["username"] for u in second["users"]] == ["Zhang_wei"]
    assert second["next"] is None
    assert client.get("/api/v1/users/search?q=%25").get_json()["users"] == []
    assert client.get("/api/v1/users/search?q=").status_code == 400


def test_a_request_accepted_makes_friends_and_opens_the_conversation_live(people, app):
    ids, clients = people
    alice_socket = connect(app, clients["alice"])
    bob_socket = connect(app, clients["bob"])
    alice_socket.received()
    bob_socket.received()
    sent = clients["alice"].post(
        "/api/v1/friend-requests", json={"user_id": ids["bob"], "message": "hi, it's Alice"}
    )
    assert sent.status_code == 201
    request = sent.get_json()["request"]
    assert bob_socket.received("friend:request")[0]["message"] == "hi, it's Alice"
    incoming = clients["bob"].get("/api/v1/friend-requests").get_json()["requests"]
    assert [r["id"] for r in incoming] == [request["id"]]

    accepted = clients["bob"].post(f"/api/v1/friend-requests/{request['id']}/accept", json={})
    assert accepted.get_json()["request"]["status"] == "accepted"
    events = alice_socket.socket.get_received()
    assert [e["args"][0]["status"] for e in events if e["name"] == "friend:request"] == [
        "pending",
        "accepted",
    ]
    new_for_alice = [e["args"][0] for e in events if e["name"] == "conversation:new"]
    assert [c["peer"]["username"] for c in new_for_alice] == ["bob"]
    assert [c["peer"]["username"] for c in bob_socket.received("conversation:new")] == ["alice"]
    friends = clients["alice"].get("/api/v1/friends").get_json()["friends"]
    assert [(f["user"]["username"], f["online"]) for f in friends] == [("bob", True)]
    ack = alice_socket.send(new_for_alice[0]["id"], "we're friends now")
    assert ack["ok"] is True


def test_asking_twice_while_pending_returns_the_pending_request(people, app):
    ids, clients = people
    first = clients["alice"].post("/api/v1/friend-requests", json={"user_id": ids["bob"]})
    again = clients["alice"].post("/api/v1/friend-requests", json={"user_id": ids["bob"]})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.get_json()["request"]["id"] == again.get_json()["request"]["id"]
    assert request_count(app) == 1


def test_asking_someone_who_already_asked_you_accepts_their_request(people, app):
    ids, clients = people
    clients["bob"].post("/api/v1/friend-requests", json={"user_id": ids["alice"]})
    response = clients["alice"].post("/api/v1/friend-requests", json={"user_id": ids["bob"]})
    assert response.get_json()["request"]["status"] == "accepted"
    assert [f["user"]["username"] for f in clients["bob"].get("/api/v1/friends").get_json()["friends"]] == [
        "alice"
    ]


def test_after_a_rejection_one_may_ask_again(people, app):
    ids, clients = people
    request = (
        clients["alice"].post("/api/v1/friend-requests", json={"user_id": ids["bob"]}).get_json()["request"]
    )
    rejected = clients["bob"].post(f"/api/v1/friend-requests/{request['id']}/reject", json={})
    assert rejected.get_json()["request"]["status"] == "rejected"
    again = clients["alice"].post("/api/v1/friend-requests", json={"user_id": ids["bob"]})
    assert again.status_code == 201
    assert again.get_json()["request"]["id"] != request["id"]


@pytest.mark.parametrize(
    ("target", "status", "code"),
    [("self", 400, "cannot_add_self"), ("friend", 409, "already_friends"), ("nobody", 404, "not_found")],
)
def test_requests_that_make_no_sense_are_refused(people, befriend, app, target, status, code):
    ids, clients = people
    befriend(ids["alice"], ids["carol"])
    user_id = {"self": ids["alice"], "friend": ids["carol"], "nobody": 987654}[target]
    before = request_count(app)
    response = clients["alice"].post("/api/v1/friend-requests", json={"user_id": user_id})
    assert response.status_code == status
    assert error_code(response) == code
    assert request_count(app) == before


@pytest.mark.parametrize(
    "payload", [{}, {"user_id": "2"}, {"user_id": 2, "message": "m" * 201}, {"user_id": 2, "extra": 1}]
)
def test_malformed_requests(people, app, payload):
    _, clients = people
    response = clients["alice"].post("/api/v1/friend-requests", json=payload)
    assert response.status_code == 400
    assert request_count(app) == 0


def test_only_the_recipient_answers_and_only_once(people, app):
    ids, clients = people
    request = (
        clients["alice"].post("/api/v1/friend-requests", json={"user_id": ids["bob"]}).get_json()["request"]
    )
    url = f"/api/v1/friend-requests/{request['id']}"
    assert error_code(clients["alice"].post(f"{url}/accept", json={})) == "forbidden"
    assert error_code(clients["carol"].post(f"{url}/accept", json={})) == "not_found"
    assert clients["bob"].post(f"{url}/accept", json={}).status_code == 200
    twice = clients["bob"].post(f"{url}/accept", json={})
    assert (twice.status_code, error_code(twice)) == (409, "request_not_pending")
    with app.app_context():
        assert db.session.scalar(select(func.count(Friendship.id))) == 1


def test_a_withdrawn_request_cannot_be_accepted(people):
    ids, clients = people
    request = (
        clients["alice"].post("/api/v1/friend-requests", json={"user_id": ids["bob"]}).get_json()["request"]
    )
    withdrawn = clients["alice"].delete(f"/api/v1/friend-requests/{request['id']}")
    assert withdrawn.get_json()["request"]["status"] == "withdrawn"
    response = clients["bob"].post(f"/api/v1/friend-requests/{request['id']}/accept", json={})
    assert error_code(response) == "request_not_pending"


def test_remarks_are_per_side(people, befriend):
    ids, clients = people
    befriend(ids["alice"], ids["bob"])
    response = clients["alice"].patch(f"/api/v1/friends/{ids['bob']}", json={"remark": "Bobby (work)"})
    assert response.get_json()["friend"]["remark"] == "Bobby (work)"
    assert clients["alice"].get("/api/v1/friends").get_json()["friends"][0]["remark"] == "Bobby (work)"
    assert clients["bob"].get("/api/v1/friends").get_json()["friends"][0]["remark"] is None
    assert clients["alice"].patch(f"/api/v1/friends/{ids['carol']}", json={"remark": "x"}).status_code == 404
    assert (
        clients["alice"].patch(f"/api/v1/friends/{ids['bob']}", json={"remark": "r" * 65}).status_code == 400
    )


def test_deleting_a_friend_closes_direct_messages_but_keeps_history(people, befriend, app):
    ids, clients = people
    befriend(ids["alice"], ids["bob"])
    alice = connect(app, clients["alice"])
    conversation_id = (
        clients["alice"]
        .post("/api/v1/conversations", json={"user_id": ids["bob"]})
        .get_json()["conversation"]["id"]
    )
    assert alice.send(conversation_id, "before")["ok"] is True
    assert clients["bob"].delete(f"/api/v1/friends/{ids['alice']}").status_code == 204
    assert alice.send(conversation_id, "after")["error"]["code"] == "not_friends"
    history = clients["bob"].get(f"/api/v1/conversations/{conversation_id}/messages").get_json()["messages"]
    assert [m["body"]["msg"] for m in history] == ["before"]
    assert clients["alice"].get("/api/v1/friends").get_json()["friends"] == []
    assert clients["alice"].delete(f"/api/v1/friends/{ids['bob']}").status_code == 404


def test_a_blocked_user_can_neither_ask_nor_message(people, befriend, app):
    ids, clients = people
    befriend(ids["alice"], ids["bob"])
    alice = connect(app, clients["alice"])
    conversation_id = (
        clients["alice"]
        .post("/api/v1/conversations", json={"user_id": ids["bob"]})
        .get_json()["conversation"]["id"]
    )
    assert clients["bob"].post("/api/v1/blocks", json={"user_id": ids["alice"]}).status_code == 204
    assert alice.send(conversation_id, "hello?")["error"]["code"] == "blocked"
    clients["bob"].delete(f"/api/v1/friends/{ids['alice']}")
    refused = clients["alice"].post("/api/v1/friend-requests", json={"user_id": ids["bob"]})
    assert (refused.status_code, error_code(refused)) == (403, "blocked")
    assert [u["username"] for u in clients["bob"].get("/api/v1/blocks").get_json()["users"]] == ["alice"]
    assert clients["bob"].delete(f"/api/v1/blocks/{ids['alice']}").status_code == 204
    assert clients["alice"].post("/api/v1/friend-requests", json={"user_id": ids["bob"]}).status_code == 201
    assert (
        error_code(clients["bob"].post("/api/v1/blocks", json={"user_id": ids["bob"]})) == "cannot_block_self"
    )


def test_blocking_removes_pending_requests_between_the_two(people, app):
    ids, clients = people
    clients["alice"].post("/api/v1/friend-requests", json={"user_id": ids["bob"]})
    clients["bob"].post("/api/v1/blocks", json={"user_id": ids["alice"]})
    assert clients["bob"].get("/api/v1/friend-requests").get_json()["requests"] == []


def test_the_friend_list_costs_the_same_queries_as_it_grows(people, befriend, make_user, count_queries):
    ids, clients = people

    def queries() -> int:
        with count_queries() as statements:
            assert clients["alice"].get("/api/v1/friends?limit=100").status_code == 200
        return len(statements)

    for index in range(3):
        befriend(ids["alice"], make_user(f"few{index}"))
    few = queries()
    for index in range(40):
        befriend(ids["alice"], make_user(f"many{index}"))
    assert queries() == few
    page = clients["alice"].get("/api/v1/friends?limit=20").get_json()
    rest = clients["alice"].get(f"/api/v1/friends?limit=100&after={page['next']}").get_json()
    assert len(page["friends"]) + len(rest["friends"]) == 43


def test_the_robot_needs_no_friend_request_and_is_not_in_search(people):
    _, clients = people
    bot = clients["alice"].get("/api/v1/bot").get_json()["bot"]
    response = clients["alice"].post("/api/v1/friend-requests", json={"user_id": bot["id"]})
    assert (response.status_code, error_code(response)) == (400, "cannot_add_bot")
    assert clients["alice"].get(f"/api/v1/users/search?q={bot['nickname'][:6]}").get_json()["users"] == []
