"""Server API users: create and import with external ids, read, update, ban and mute with the
key as the actor, delete (anonymise); on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import (
    AuditLog,
    Block,
    DeviceSession,
    FriendRequest,
    Friendship,
    Group,
    GroupMember,
    OAuthIdentity,
    Upload,
    User,
    utcnow,
)
from tests.chat_helpers import connect
from tests.conftest import PASSWORD
from tests.test_media import fetch, stored_files, uploaded

BASE = "/api/server/v1"


def code_of(response) -> str | None:
    return (response.get_json() or {}).get("error", {}).get("code")


def user_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(User.id)))


@pytest.fixture
def key(api_key):
    return api_key()


# --- create -------------------------------------------------------------------------------------


def test_create_a_user_with_an_external_id(client, key, app):
    response = client.post(
        f"{BASE}/users",
        json={
            "external_id": "crm:1001",
            "username": "ada",
            "nickname": "Ada",
            "avatar_url": "https://cdn.example.com/ada.png",
            "signature": "hi",
            "locale": "zh-CN",
            "password": PASSWORD,
        },
        headers=key,
    )
    assert response.status_code == 201, response.get_json()
    user = response.get_json()["user"]
    assert {
        k: user[k] for k in ("external_id", "username", "nickname", "avatar_url", "signature", "locale")
    } == {
        "external_id": "crm:1001",
        "username": "ada",
        "nickname": "Ada",
        "avatar_url": "https://cdn.example.com/ada.png",
        "signature": "hi",
        "locale": "zh-CN",
    }
    assert user["banned"] is False and user["muted"] is False and user["muted_until"] is None
    assert user["deleted"] is False and user["is_bot"] is False and user["created_at"].endswith("Z")
    login = app.test_client().post("/api/v1/auth/login", json={"username": "ada", "password": PASSWORD})
    assert login.status_code == 200


def test_without_a_username_one_is_made_from_the_external_id(client, key, make_user, app):
    make_user("crm-1001")
    first = client.post(f"{BASE}/users", json={"external_id": "crm:1001"}, headers=key)
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["user"]["username"] == "crm-1001-2"
    assert first.get_json()["user"]["nickname"] == "crm-1001-2"
    short = client.post(f"{BASE}/users", json={"external_id": "7"}, headers=key).get_json()["user"]
    assert short["username"] == "7-user"
    # No password: no sign-in by password.
    login = app.test_client().post("/api/v1/auth/login", json={"username": "7-user", "password": ""})
    assert login.status_code in (400, 401)
    with app.app_context():
        assert db.session.scalar(select(User.password_hash).where(User.username == "7-user")) is None


def test_duplicates_are_409_and_write_nothing(client, key, make_user, app):
    make_user("taken")
    assert client.post(f"{BASE}/users", json={"external_id": "e1"}, headers=key).status_code == 201
    before = user_count(app)
    again = client.post(f"{BASE}/users", json={"external_id": "e1", "username": "other"}, headers=key)
    assert again.status_code == 409 and code_of(again) == "external_id_taken"
    name = client.post(f"{BASE}/users", json={"external_id": "e2", "username": "TAKEN"}, headers=key)
    assert name.status_code == 409 and code_of(name) == "username_taken"
    assert user_count(app) == before


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "external_id"),
        ({"external_id": ""}, "external_id"),
        ({"external_id": "has space"}, "external_id"),
        ({"external_id": "x" * 65}, "external_id"),
        ({"external_id": "ok", "username": "a!"}, "username"),
        ({"external_id": "ok", "password": "short"}, "password"),
        ({"external_id": "ok", "locale": "fr"}, "locale"),
        ({"external_id": "ok", "nickname": ""}, "nickname"),
        ({"external_id": "ok", "is_admin": True}, "is_admin"),
        ({"external_id": 5}, "external_id"),
    ],
)
def test_bad_fields_are_400_with_fields_and_write_nothing(client, key, app, payload, field):
    response = client.post(f"{BASE}/users", json=payload, headers=key)
    assert response.status_code == 400, response.get_json()
    assert code_of(response) == "invalid_input"
    assert field in response.get_json()["error"]["fields"]
    assert user_count(app) == 0


def test_a_bad_avatar_is_invalid_avatar_and_writes_nothing(client, key, app):
    response = client.post(
        f"{BASE}/users", json={"external_id": "ok", "avatar_url": "javascript:alert(1)"}, headers=key
    )
    assert (response.status_code, code_of(response)) == (400, "invalid_avatar")
    assert "avatar_url" in response.get_json()["error"]["fields"]
    assert user_count(app) == 0


def test_scopes(client, api_key, make_user):
    reader = api_key("read")
    refused = client.post(f"{BASE}/users", json={"external_id": "x"}, headers=reader)
    assert refused.status_code == 403 and code_of(refused) == "forbidden"
    user_id = make_user("alice")
    assert client.get(f"{BASE}/users/{user_id}", headers=reader).status_code == 200
    assert client.patch(f"{BASE}/users/{user_id}", json={"nickname": "A"}, headers=reader).status_code == 403
    assert client.delete(f"{BASE}/users/{user_id}", headers=reader).status_code == 403
    users_only = api_key("users")
    assert client.post(f"{BASE}/users/{user_id}/ban", json={}, headers=users_only).status_code == 403
    assert client.post(f"{BASE}/users", json={"external_id": "x"}).status_code == 401


# --- import -------------------------------------------------------------------------------------


def test_import_reports_every_row_and_creates_the_good_ones(client, key, make_user, app):
    make_user("taken")
    assert client.post(f"{BASE}/users", json={"external_id": "old"}, headers=key).status_code == 201
    before = user_count(app)
    rows = [
        {"external_id": "a1", "username": "anna"},  # 0 created
        {"external_id": "old"},  # 1 existing
        {"external_id": "a1", "username": "anna2"},  # 2 repeats row 0's external id
        {"external_id": "a3", "username": "ANNA"},  # 3 repeats row 0's username
        {"external_id": "a4", "username": "taken"},  # 4 taken in the database
        {"external_id": "bad id"},  # 5 invalid
        {"external_id": "a6", "password": "short"},  # 6 invalid password
        {"external_id": "a7", "nickname": "Seven", "unknown": 1},  # 7 unknown field
        {"external_id": "a8", "nickname": "Eight"},  # 8 created
        {"external_id": "anna"},  # 9 created, its username derived around row 0's
    ]
    response = client.post(f"{BASE}/users/import", json={"users": rows}, headers=key)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert [user["external_id"] for user in body["created"]] == ["a1", "a8", "anna"]
    assert body["created"][2]["username"] == "anna-2"
    assert body["existing"] == [{"index": 1, "id": body["existing"][0]["id"], "external_id": "old"}]
    errors = {item["index"]: item for item in body["errors"]}
    assert sorted(errors) == [2, 3, 4, 5, 6, 7]
    assert (
        errors[2]["error"]["code"] == "duplicate_in_batch" and "external_id" in errors[2]["error"]["fields"]
    )
    assert errors[3]["error"]["code"] == "duplicate_in_batch" and "username" in errors[3]["error"]["fields"]
    assert errors[4]["error"]["code"] == "username_taken"
    assert errors[5]["error"]["code"] == "invalid_input" and errors[5]["external_id"] == "bad id"
    assert errors[6]["error"]["fields"] == {"password": "must be 8 to 128 characters"}
    assert "unknown" in errors[7]["error"]["fields"]
    assert user_count(app) == before + 3
    # A retry of the same batch creates nothing more: the good rows are existing now.
    again = client.post(f"{BASE}/users/import", json={"users": rows}, headers=key).get_json()
    assert again["created"] == []
    assert [item["index"] for item in again["existing"]] == [0, 1, 8, 9]
    assert user_count(app) == before + 3


def test_a_row_refused_while_written_leaves_nothing_half_written(client, key, app, monkeypatch):
    """A refusal raised by create_user itself (a nickname screened out, say) costs its row only."""
    from app.auth import services as auth
    from app.errors import ApiError

    real = auth.create_user

    def screening(username, password, nickname=None, **kwargs):
        if nickname == "forbidden":
            raise ApiError("content_blocked", "Blocked.", 400, {"nickname": "blocked"})
        return real(username, password, nickname, **kwargs)

    monkeypatch.setattr(auth, "create_user", screening)
    rows = [{"external_id": f"r{n}", "nickname": "forbidden" if n == 2 else f"R{n}"} for n in range(5)]
    body = client.post(f"{BASE}/users/import", json={"users": rows}, headers=key).get_json()
    assert [user["external_id"] for user in body["created"]] == ["r0", "r1", "r3", "r4"]
    assert [(item["index"], item["error"]["code"]) for item in body["errors"]] == [(2, "content_blocked")]
    assert user_count(app) == 4


def test_import_of_500_rows_in_one_call_and_501_refused(client, key, app, count_queries):
    rows = [{"external_id": f"user-{n}", "nickname": f"User {n}"} for n in range(500)]
    with count_queries() as statements:
        response = client.post(f"{BASE}/users/import", json={"users": rows}, headers=key)
    assert response.status_code == 200
    assert len(response.get_json()["created"]) == 500 and response.get_json()["errors"] == []
    assert user_count(app) == 500
    user_selects = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "users" in s]
    assert len(user_selects) <= 4, user_selects  # existing ids, taken names; no lookup per row
    with count_queries() as statements:
        again = client.post(f"{BASE}/users/import", json={"users": rows}, headers=key)
    assert len(again.get_json()["existing"]) == 500 and again.get_json()["created"] == []
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT") and "users" in s]) <= 4
    too_many = client.post(f"{BASE}/users/import", json={"users": rows + [{"external_id": "x"}]}, headers=key)
    assert too_many.status_code == 400 and "users" in too_many.get_json()["error"]["fields"]
    assert user_count(app) == 500


def test_passwords_are_hashed_before_the_first_write(client, key, app, monkeypatch):
    """argon2 runs while nothing is written yet (SQLite's write lock is not held for it)."""
    from sqlalchemy import event

    from app.auth import services as auth

    order: list[str] = []
    real_hash = auth.hash_password

    def hashing(password):
        order.append("hash")
        return real_hash(password)

    def writing(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO USERS"):
            order.append("insert")

    monkeypatch.setattr(auth, "hash_password", hashing)
    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", writing)
    try:
        rows = [
            {"external_id": f"p{n}", "username": f"pass{n}", "password": f"{PASSWORD}{n}"} for n in range(3)
        ]
        body = client.post(f"{BASE}/users/import", json={"users": rows}, headers=key).get_json()
    finally:
        event.remove(engine, "before_cursor_execute", writing)
    assert len(body["created"]) == 3, body
    assert order.count("hash") == 3 and "insert" in order
    assert order.index("insert") > max(n for n, step in enumerate(order) if step == "hash")
    login = app.test_client().post(
        "/api/v1/auth/login", json={"username": "pass2", "password": f"{PASSWORD}2"}
    )
    assert login.status_code == 200


def test_a_realistic_import_of_500_rows_fits_its_body_cap(client, key, app):
    rows = [
        {
            "external_id": f"crm:employee:{n:06d}",
            "username": f"employee.{n:06d}",
            "nickname": f"Employee Number {n:06d}",
            "avatar_url": f"https://cdn.corp.example.com/avatars/{n:06d}.png",
            "signature": "Customer success, EMEA",
            "locale": "en",
        }
        for n in range(500)
    ]
    body = {"users": rows}
    size = len(__import__("json").dumps(body))
    assert size > app.config["MAX_JSON_BYTES"]  # ~82 KB: over the general cap
    response = client.post(f"{BASE}/users/import", json=body, headers=key)
    assert response.status_code == 200, response.get_json()
    assert len(response.get_json()["created"]) == 500
    # Other routes keep the general cap, and a batch route has its own.
    big = client.post(f"{BASE}/users", json={"external_id": "x", "signature": "a" * size}, headers=key)
    assert (big.status_code, code_of(big)) == (413, "payload_too_large")
    huge = client.post(f"{BASE}/users/import", json={"users": rows * 13}, headers=key)
    assert (huge.status_code, code_of(huge)) == (413, "payload_too_large")


def test_batch_body_caps_name_real_routes(app):
    from app.validation import JSON_BODY_LIMITS

    assert {"server_api.import_users", "server_api.send_notice", "server_api.group_create"} <= set(
        JSON_BODY_LIMITS
    )
    assert set(JSON_BODY_LIMITS) <= set(app.view_functions)


def test_blocked_nicknames_in_an_import_are_errors_of_their_rows(app, client, key, make_user):
    from app.wordfilter import services as words

    root = make_user("root", is_admin=True)
    with app.app_context():
        words.create_list(root, "blocked", "reject", True, "badword")
    rows = [{"external_id": f"b{n}", "nickname": f"the badword {n}"} for n in range(5)]
    rows += [
        {"external_id": "badword-9"},
        {"external_id": "ok-1", "nickname": "Fine"},
        {"external_id": "ok-2"},
    ]
    response = client.post(f"{BASE}/users/import", json={"users": rows}, headers=key)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert [user["external_id"] for user in body["created"]] == ["ok-1", "ok-2"]
    errors = [(item["index"], item["error"]["code"], item["error"]["fields"]) for item in body["errors"]]
    blocked = {"nickname": "contains a blocked word"}
    assert errors == [(n, "content_blocked", blocked) for n in range(5)] + [
        (5, "content_blocked", {"username": "contains a blocked word"})
    ]


def test_an_external_id_with_an_at_gets_an_opaque_username(app, client, key, login, make_user):
    made = client.post(f"{BASE}/users", json={"external_id": "alice@corp.com"}, headers=key).get_json()[
        "user"
    ]
    assert re.fullmatch(r"u-[0-9a-f]{10}", made["username"]), made
    assert made["nickname"] == made["username"]
    rows = [{"external_id": "bob@corp.com"}, {"external_id": "carol@corp.com", "username": "carol"}]
    body = client.post(f"{BASE}/users/import", json={"users": rows}, headers=key).get_json()
    assert re.fullmatch(r"u-[0-9a-f]{10}", body["created"][0]["username"])
    assert body["created"][1]["username"] == "carol"
    # Contact search finds nobody by the company's address.
    make_user("dave")
    dave = login("dave")
    for query in ("alice", "corp.com", "alice-corp"):
        found = dave.get(f"/api/v1/users/search?q={query}").get_json()
        assert found.get("users", found.get("results")) == [], (query, found)


# --- read and update ------------------------------------------------------------------------------


def test_get_by_id_and_by_external_id(client, api_key):
    key = api_key("users")
    made = client.post(f"{BASE}/users", json={"external_id": "u@x:1"}, headers=key).get_json()["user"]
    reader = api_key("read")
    assert client.get(f"{BASE}/users/{made['id']}", headers=reader).get_json()["user"] == made
    by_ext = client.get(f"{BASE}/users/by-external-id/u@x:1", headers=reader)
    assert by_ext.status_code == 200 and by_ext.get_json()["user"] == made
    assert code_of(client.get(f"{BASE}/users/by-external-id/nobody", headers=reader)) == "not_found"
    assert client.get(f"{BASE}/users/999999", headers=reader).status_code == 404


def test_update_the_profile(client, key, make_user):
    user_id = make_user("alice")
    response = client.patch(
        f"{BASE}/users/{user_id}",
        json={
            "nickname": "Alice L.",
            "avatar_url": "https://cdn.example.com/a.png",
            "signature": "yo",
            "locale": "en",
        },
        headers=key,
    )
    assert response.status_code == 200, response.get_json()
    user = response.get_json()["user"]
    assert (user["nickname"], user["avatar_url"], user["signature"], user["locale"]) == (
        "Alice L.",
        "https://cdn.example.com/a.png",
        "yo",
        "en",
    )
    bad = client.patch(f"{BASE}/users/{user_id}", json={"avatar_url": "data:text/html,hi"}, headers=key)
    assert bad.status_code == 400 and "avatar_url" in bad.get_json()["error"]["fields"]
    assert code_of(bad) == "invalid_avatar"
    forbidden = client.patch(f"{BASE}/users/{user_id}", json={"username": "x"}, headers=key)
    assert forbidden.status_code == 400
    kept = client.get(f"{BASE}/users/{user_id}", headers=key).get_json()["user"]["avatar_url"]
    assert kept == "https://cdn.example.com/a.png"


# --- moderation -----------------------------------------------------------------------------------


def test_ban_disconnects_refuses_login_and_is_audited_with_the_key(app, client, api_key, make_user, login):
    key = api_key("moderation", name="moderator")
    user_id = make_user("alice")
    device = connect(app, login("alice"))
    response = client.post(f"{BASE}/users/{user_id}/ban", json={"reason": "spam", "minutes": 60}, headers=key)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["user"]["banned"] is True
    assert not device.socket.is_connected()
    assert device.http.get("/api/v1/auth/me").status_code == 401
    again = app.test_client().post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    assert code_of(again) == "account_banned"
    lifted = client.delete(f"{BASE}/users/{user_id}/ban", json={"reason": "appeal"}, headers=key)
    assert lifted.status_code == 200 and lifted.get_json()["user"]["banned"] is False
    assert code_of(client.delete(f"{BASE}/users/{user_id}/ban", headers=key)) == "not_banned"
    assert (
        app.test_client()
        .post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
        .status_code
        == 200
    )
    with app.app_context():
        from app.models import ApiKey

        key_id = db.session.scalar(select(ApiKey.id).where(ApiKey.name == "moderator"))
        rows = db.session.execute(
            select(AuditLog.action, AuditLog.admin_id, AuditLog.reason, AuditLog.details)
            .where(AuditLog.action != "api_request")
            .order_by(AuditLog.id)
        ).all()
    assert [(row.action, row.admin_id, row.reason, row.details["api_key"]) for row in rows] == [
        ("ban", None, "spam", key_id),
        ("unban", None, "appeal", key_id),
    ]


def test_mute_refuses_sends_and_unmute_lifts_it(app, client, api_key, pair):
    key = api_key("moderation")
    alice_phone, _, bob, conversation_id = pair
    muted = client.post(f"{BASE}/users/{alice_phone.user_id}/mute", json={"minutes": 30}, headers=key)
    assert muted.status_code == 200
    user = muted.get_json()["user"]
    assert user["muted"] is True and user["muted_until"].endswith("Z")
    ack = alice_phone.send(conversation_id, "hello")
    assert ack["ok"] is False and ack["error"]["code"] == "muted"
    assert client.delete(f"{BASE}/users/{alice_phone.user_id}/mute", headers=key).status_code == 200
    assert alice_phone.send(conversation_id, "hello")["ok"] is True
    forever = client.post(f"{BASE}/users/{bob.user_id}/mute", json={}, headers=key).get_json()["user"]
    assert forever["muted"] is True and forever["muted_until"] is None
    with app.app_context():
        details = db.session.scalars(select(AuditLog.details).where(AuditLog.action.in_(["mute", "unmute"])))
        assert all(row["api_key"] for row in details)


@pytest.mark.parametrize(
    "payload", [{"minutes": 0}, {"minutes": "5"}, {"minutes": 10**9}, {"reason": "x" * 501}, {"until": 1}]
)
def test_bad_sanctions_are_refused(client, api_key, make_user, payload, app):
    user_id = make_user("alice")
    response = client.post(f"{BASE}/users/{user_id}/ban", json=payload, headers=api_key("moderation"))
    assert response.status_code == 400
    with app.app_context():
        assert (
            db.session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "ban")) == 0
        )


def test_admins_cannot_be_sanctioned_or_deleted(client, key, make_user):
    admin_id = make_user("root", is_admin=True)
    assert (
        code_of(client.post(f"{BASE}/users/{admin_id}/ban", json={}, headers=key)) == "cannot_sanction_admin"
    )
    assert code_of(client.delete(f"{BASE}/users/{admin_id}", headers=key)) == "protected_account"


def test_admins_and_the_robot_cannot_be_changed(app, client, key, make_user):
    for user_id in (make_user("root", is_admin=True), make_user("robot", is_bot=True)):
        response = client.patch(f"{BASE}/users/{user_id}", json={"nickname": "Owned"}, headers=key)
        assert (response.status_code, code_of(response)) == (409, "protected_account")
        with app.app_context():
            assert db.session.get(User, user_id).nickname != "Owned"


# --- delete ---------------------------------------------------------------------------------------


def test_delete_anonymises_and_keeps_the_messages(app, client, key, pair, make_user, befriend):
    alice_phone, alice_laptop, bob, conversation_id = pair
    alice_id = alice_phone.user_id
    with app.app_context():
        db.session.execute(User.__table__.update().where(User.id == alice_id).values(external_id="crm-alice"))
        db.session.add(OAuthIdentity(user_id=alice_id, provider="github", provider_user_id="42"))
        db.session.commit()
    assert alice_phone.send(conversation_id, "remember me")["ok"] is True
    earlier = stored_files(app)  # other tests' files in the shared upload folder
    photo = uploaded(alice_phone.http, b"just some notes\n", "notes.txt")
    assert alice_phone.send(conversation_id, body={"type": "file", "upload_id": photo["id"]})["ok"] is True
    files_before = stored_files(app)
    assert files_before - earlier
    assert fetch(bob.http, photo["url"]).status_code == 200
    carol = make_user("carol")
    dave = make_user("dave")
    with app.app_context():
        db.session.add(Block(user_id=carol, blocked_user_id=alice_id))
        db.session.add(FriendRequest(from_user_id=alice_id, to_user_id=dave))
        db.session.commit()
    bob.received()

    response = client.delete(f"{BASE}/users/{alice_id}", headers=key)
    assert response.status_code == 204, response.get_json()

    # Sessions revoked, sockets dropped, no sign-in.
    assert not alice_phone.socket.is_connected() and not alice_laptop.socket.is_connected()
    assert alice_phone.http.get("/api/v1/auth/me").status_code == 401
    refused = app.test_client().post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    assert refused.status_code == 401
    # The username is free again.
    assert (
        client.post(
            f"{BASE}/users", json={"external_id": "crm-alice", "username": "alice"}, headers=key
        ).status_code
        == 201
    )
    # Bob still has the messages, from "Deleted user".
    history = bob.http.get(f"/api/v1/conversations/{conversation_id}/messages").get_json()["messages"]
    mine = [m for m in history if m["sender"] and m["sender"]["id"] == alice_id]
    assert [m["body"].get("msg") for m in mine] == ["remember me", None]
    assert all(m["sender"]["nickname"] == "Deleted user" and m["sender"]["avatar_url"] is None for m in mine)
    assert all(m["sender"]["deleted"] is True for m in mine)
    # The upload is gone: the message shows a missing file.
    assert fetch(bob.http, photo["url"]).status_code == 404
    assert stored_files(app) - earlier == set()
    assert bob.received("friend:removed")
    with app.app_context():
        user = db.session.get(User, alice_id)
        assert user.username == f"deleted-{alice_id}" and user.nickname == "Deleted user"
        assert user.password_hash is None and user.external_id is None and user.deleted_at is not None
        assert db.session.scalar(select(func.count()).select_from(Upload)) == 0
        assert db.session.scalar(select(func.count()).select_from(OAuthIdentity)) == 0
        assert db.session.scalar(select(func.count()).select_from(Friendship)) == 0
        assert db.session.scalar(select(func.count()).select_from(Block)) == 0
        assert (
            db.session.scalar(
                select(func.count()).select_from(FriendRequest).where(FriendRequest.status == "pending")
            )
            == 0
        )
        live = (
            select(func.count())
            .select_from(DeviceSession)
            .where(DeviceSession.user_id == alice_id, DeviceSession.revoked_at.is_(None))
        )
        assert db.session.scalar(live) == 0
    # The server API still shows the account, as deleted; writes to it are refused.
    shown = client.get(f"{BASE}/users/{alice_id}", headers=key).get_json()["user"]
    assert shown["deleted"] is True and shown["external_id"] is None and shown["nickname"] == "Deleted user"
    assert (
        code_of(client.patch(f"{BASE}/users/{alice_id}", json={"nickname": "Back"}, headers=key))
        == "user_deleted"
    )
    assert code_of(client.post(f"{BASE}/users/{alice_id}/ban", json={}, headers=key)) == "user_deleted"
    # Deleting again is harmless.
    assert client.delete(f"{BASE}/users/{alice_id}", headers=key).status_code == 204
    assert client.delete(f"{BASE}/users/999999", headers=key).status_code == 404


def test_delete_removes_device_rows_and_blanks_answered_request_notes(app, client, key, make_user, login):
    from app.groups.services import create_group
    from app.models import GroupJoinRequest

    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    alice_http = login("alice", user_agent="Mozilla/5.0 (Alice's laptop)")
    bob_http = login("bob")
    with app.app_context():
        group = create_group(bob, "Team", [])
        db.session.add_all(
            [
                FriendRequest(
                    from_user_id=alice, to_user_id=bob, message="Alice from Acme", status="accepted"
                ),
                FriendRequest(from_user_id=carol, to_user_id=alice, message="Carol here", status="rejected"),
                FriendRequest(from_user_id=carol, to_user_id=bob, message="Carol to Bob", status="accepted"),
                GroupJoinRequest(
                    group_id=group.id, user_id=alice, message="Alice, room 12", status="rejected"
                ),
                GroupJoinRequest(
                    group_id=group.id, user_id=carol, message="Carol, room 7", status="rejected"
                ),
            ]
        )
        db.session.commit()
    assert client.delete(f"{BASE}/users/{alice}", headers=key).status_code == 204
    assert alice_http.get("/api/v1/auth/me").status_code == 401
    assert bob_http.get("/api/v1/auth/me").status_code == 200
    with app.app_context():
        assert (
            db.session.scalar(select(func.count(DeviceSession.id)).where(DeviceSession.user_id == alice)) == 0
        )
        assert (
            db.session.scalar(select(func.count(DeviceSession.id)).where(DeviceSession.user_id == bob)) == 1
        )
        notes = {
            (row.from_user_id, row.to_user_id): row.message
            for row in db.session.scalars(select(FriendRequest))
        }
        assert notes == {(alice, bob): "", (carol, alice): "", (carol, bob): "Carol to Bob"}
        joins = {row.user_id: row.message for row in db.session.scalars(select(GroupJoinRequest))}
        assert joins == {alice: "", carol: "Carol, room 7"}


def test_an_old_session_of_a_deleted_user_is_refused_even_if_not_revoked(app, make_user, login):
    from app.auth import services as auth

    make_user("alice")
    http = login("alice")
    with app.app_context():
        db.session.execute(User.__table__.update().values(deleted_at=utcnow()))
        db.session.commit()
        user = db.session.scalar(select(User).where(User.username == "alice"))
        with pytest.raises(Exception) as refused:
            auth.start_device_session(user, "pytest", None)
        assert getattr(refused.value, "code", None) == "unauthenticated"
    assert http.get("/api/v1/auth/me").status_code == 401


def test_delete_leaves_groups_handing_them_on(app, client, key, make_user, befriend, login):
    from app.groups import roles as group_roles
    from app.groups import services as groups

    owner, admin, member, solo_owner = (make_user(name) for name in ("owner", "admin", "member", "solo"))
    befriend(owner, admin)
    befriend(owner, member)
    with app.app_context():
        shared = groups.create_group(owner, "Shared", [member, admin]).id
        group_roles.set_role(owner, shared, admin, "admin")
        as_member = groups.create_group(admin, "Other", [owner]).id
        alone = groups.create_group(solo_owner, "Alone").id
    assert client.delete(f"{BASE}/users/{owner}", headers=key).status_code == 204
    assert client.delete(f"{BASE}/users/{solo_owner}", headers=key).status_code == 204
    with app.app_context():
        group = db.session.get(Group, shared)
        assert group.owner_id == admin and group.member_count == 2
        assert db.session.get(GroupMember, (shared, owner)) is None
        assert db.session.get(GroupMember, (as_member, owner)) is None
        assert db.session.get(Group, alone).dissolved_at is not None
        conversation_id = group.conversation_id
    history = login("member").get(f"/api/v1/conversations/{conversation_id}/messages").get_json()
    texts = [m["body"].get("text") for m in history["messages"]]
    assert "Deleted user made admin the owner" in texts and "Deleted user left the group" in texts


def test_a_deleted_user_is_not_found_by_search_or_friend_requests(client, key, make_user, login):
    gone = make_user("gone-user")
    make_user("carol")
    carol = login("carol")
    assert [u["id"] for u in carol.get("/api/v1/users/search?q=user").get_json()["users"]] == [gone]
    assert client.delete(f"{BASE}/users/{gone}", headers=key).status_code == 204
    assert carol.get("/api/v1/users/search?q=deleted").get_json()["users"] == []
    refused = carol.post("/api/v1/friend-requests", json={"user_id": gone})
    assert refused.status_code == 404


def test_a_signature_given_at_creation_is_screened(app, client, key, make_user):
    from app.wordfilter import services as words

    root = make_user("root", is_admin=True)
    with app.app_context():
        words.create_list(root, "blocked", "reject", True, "badword")
        words.create_list(root, "masked", "mask", True, "jerk")
    before = user_count(app)
    refused = client.post(f"{BASE}/users", json={"external_id": "s1", "signature": "a badword"}, headers=key)
    assert refused.status_code == 400 and code_of(refused) == "content_blocked"
    assert user_count(app) == before
    rows = [{"external_id": "s2", "signature": "a jerk"}, {"external_id": "s3", "signature": "badword"}]
    body = client.post(f"{BASE}/users/import", json={"users": rows}, headers=key).get_json()
    assert [user["signature"] for user in body["created"]] == ["a ***"]
    assert [(item["index"], item["error"]["code"]) for item in body["errors"]] == [(1, "content_blocked")]
    assert user_count(app) == before + 1


def test_a_registered_deleted_name_is_not_taken_over(app, client, key, make_user):
    target = make_user("target")
    holder = make_user(f"deleted-{target}")
    assert client.delete(f"{BASE}/users/{target}", headers=key).status_code == 204
    with app.app_context():
        assert db.session.get(User, holder).username == f"deleted-{target}"
        assert db.session.get(User, target).username.startswith(f"deleted-{target}-")


# --- second review ------------------------------------------------------------------------------


def test_the_robot_cannot_be_banned_or_muted(app, client, api_key, make_user):
    robot = make_user("robot", is_bot=True)
    headers = api_key("moderation")
    for action in ("ban", "mute"):
        response = client.post(f"{BASE}/users/{robot}/{action}", json={}, headers=headers)
        assert (response.status_code, code_of(response)) == (409, "cannot_sanction_robot")
    with app.app_context():
        sanctions = select(func.count()).select_from(AuditLog).where(AuditLog.action.in_(["ban", "mute"]))
        assert db.session.scalar(sanctions) == 0


def test_deleting_reports_the_groups_left_under_the_external_id(app, client, key, make_user, befriend):
    from app.groups import services as groups
    from tests.fake_integrator import FakeIntegrator
    from tests.test_webhooks import add_hook, rows

    owner, member = make_user("owner"), make_user("member")
    befriend(owner, member)
    with app.app_context():
        db.session.get(User, member).external_id = "crm-member"
        db.session.commit()
        group_id = groups.create_group(owner, "Team", [member]).id
    fake = FakeIntegrator().start()
    try:
        add_hook(app, fake, ["group.member_left"])
        assert client.delete(f"{BASE}/users/{member}", headers=key).status_code == 204
    finally:
        fake.stop()
    (row,) = rows(app, event="group.member_left")
    data = row.payload["data"]
    assert data["group"]["id"] == group_id
    assert data["user"]["id"] == member and data["user"]["external_id"] == "crm-member"
    assert data["user"]["nickname"] == "Deleted user"  # the person's name is gone already
    with app.app_context():
        assert db.session.get(User, member).external_id is None
