"""Who may do what to a message: every action × every relation to the group × the message's state,
each answered with the documented code, and a refused action changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.groups.services import create_group, leave
from app.models import Conversation, Message, MessageHide, MessageReaction
from tests.chat_helpers import new_client_msg_id

ROLES = ("owner", "admin", "author", "member", "former", "stranger")


def _request(client, action: str, conversation_id: int, seq: int):
    base = f"/api/v1/conversations/{conversation_id}"
    if action == "recall":
        return client.post(f"{base}/messages/{seq}/recall", json={})
    if action == "edit":
        return client.patch(f"{base}/messages/{seq}", json={"msg": "changed", "version": 0})
    if action == "react":
        return client.put(f"{base}/messages/{seq}/reactions/👍", json={})
    if action == "pin":
        return client.put(f"{base}/pins/{seq}", json={})
    if action == "hide":
        return client.post(f"{base}/messages/hide", json={"seqs": [seq]})
    if action == "reply":
        body = {"type": "txt", "msg": "re"}
        return client.post(
            f"{base}/messages", json={"client_msg_id": new_client_msg_id(), "body": body, "reply_to": seq}
        )
    if action == "forward":
        target = {"conversation_id": conversation_id, "client_msg_id": new_client_msg_id()}
        payload = {"conversation_id": conversation_id, "seqs": [seq], "mode": "separate", "targets": [target]}
        return client.post("/api/v1/messages/forward", json=payload)
    raise AssertionError(action)


def _outcome(response) -> str:
    body = response.get_json()
    if response.status_code >= 400:
        return body["error"]["code"]
    if "results" in body:  # a forward answers per target
        result = body["results"][0]
        return "ok" if result["ok"] else result["error"]["code"]
    return "ok"


# Acting on a fresh message of "author" (a plain member), inside every window.
FRESH = {
    "owner": dict(
        recall="ok", edit="not_editable", react="ok", pin="ok", hide="ok", reply="ok", forward="ok"
    ),
    "admin": dict(
        recall="ok", edit="not_editable", react="ok", pin="ok", hide="ok", reply="ok", forward="ok"
    ),
    "author": dict(
        recall="ok", edit="ok", react="ok", pin="not_allowed", hide="ok", reply="ok", forward="ok"
    ),
    "member": dict(
        recall="not_allowed",
        edit="not_editable",
        react="ok",
        pin="not_allowed",
        hide="ok",
        reply="ok",
        forward="ok",
    ),
    # Left the group after the message: still sees it, may hide it, may act on nothing else there.
    "former": dict(
        recall="not_member",
        edit="not_member",
        react="not_member",
        pin="not_member",
        hide="ok",
        reply="not_member",
        forward="not_member",
    ),
    "stranger": dict(
        recall="not_found",
        edit="not_found",
        react="not_found",
        pin="not_found",
        hide="not_found",
        reply="not_found",
        forward="not_found",
    ),
}
# Acting on a recalled message.
RECALLED = {
    role: {
        action: ("already_recalled" if role not in ("former", "stranger") else FRESH[role][action])
        for action in FRESH[role]
    }
    for role in ROLES
}
for _role in ("owner", "admin", "author", "member"):
    RECALLED[_role]["hide"] = "ok"  # a recalled message can still be cleared from one's own history
RECALLED["author"]["edit"] = "already_recalled"
# Who may never pin is told so first; a forward judges its sources before any target.
RECALLED["author"]["pin"] = RECALLED["member"]["pin"] = "not_allowed"
RECALLED["former"]["forward"] = "already_recalled"


@pytest.fixture
def group(app, make_user, befriend, login):
    ids = {role: make_user(role) for role in ROLES}
    for role in ROLES:
        if role not in ("owner", "stranger"):
            befriend(ids["owner"], ids[role])
    with app.app_context():
        made = create_group(ids["owner"], "Matrix", [ids[r] for r in ("admin", "author", "member", "former")])
        conversation_id, group_id = made.conversation_id, made.id
        db.session.commit()
    clients = {role: login(role) for role in ROLES}
    owner = clients["owner"]
    response = owner.put(f"/api/v1/groups/{group_id}/members/{ids['admin']}/role", json={"role": "admin"})
    assert response.status_code == 200, response.get_json()
    return ids, clients, group_id, conversation_id


def _state(app, conversation_id: int) -> tuple:
    with app.app_context():
        messages = db.session.execute(
            select(Message.seq, Message.body, Message.recalled_at, Message.edit_count).where(
                Message.conversation_id == conversation_id
            )
        ).all()
        reactions = db.session.scalar(select(func.count()).select_from(MessageReaction))
        hides = db.session.scalar(select(func.count()).select_from(MessageHide))
        pins = db.session.get(Conversation, conversation_id).pins
        return sorted(map(tuple, messages), key=lambda row: row[0]), reactions, hides, pins


@pytest.mark.parametrize("state", ["fresh", "recalled"])
@pytest.mark.parametrize("role", ROLES)
def test_every_action_by_every_relation(app, group, role, state):
    ids, clients, group_id, conversation_id = group
    author = clients["author"]

    def post(text: str) -> dict:
        payload = {"client_msg_id": new_client_msg_id(), "body": {"type": "txt", "msg": text}}
        response = author.post(f"/api/v1/conversations/{conversation_id}/messages", json=payload)
        assert response.status_code == 201
        return response.get_json()["message"]

    targets = {action: post(f"{action} target") for action in FRESH[role]}
    if state == "recalled":
        for message in targets.values():
            response = author.post(
                f"/api/v1/conversations/{conversation_id}/messages/{message['seq']}/recall", json={}
            )
            assert response.status_code == 200
    if role == "former":
        with app.app_context():
            leave(ids["former"], group_id)
    expected = (FRESH if state == "fresh" else RECALLED)[role]
    seen = {}
    for action, message in targets.items():
        before = _state(app, conversation_id)
        response = _request(clients[role], action, conversation_id, message["seq"])
        seen[action] = _outcome(response)
        if seen[action] != "ok":
            assert response.status_code >= 400 or action == "forward"
            assert _state(app, conversation_id) == before, (action, "a refused action changed something")
    assert seen == expected
