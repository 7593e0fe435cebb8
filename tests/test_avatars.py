"""What an avatar may be (app/media/avatars.py): one rule for a user's PATCH, the /account form,
group settings by the owner and admins, and the server API; refusals are `invalid_avatar` and
change nothing; avatar uploads stay public and survive cleanup while in use; profile changes
reach every device of the user (`me:update`)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.errors import ApiError
from app.extensions import db
from app.media import avatars
from app.models import Upload, utcnow
from tests.chat_helpers import connect
from tests.test_media import fetch, image_bytes, uploaded
from tests.test_pages import csrf_from

SERVER = "/api/server/v1"
ME = "/api/v1/auth/me"

ACCEPTED_LINKS = [
    "https://example.org/a.png",
    "https://cdn.example.com:8443/p/a%20b.png?size=64&v=2#top",
    "https://[2001:db8::1]/a.png",
    "https://192.0.2.7/a.png",
    "https://例え.jp/顔.png",
    "https://example.org/" + "a" * (500 - len("https://example.org/")),
]
REFUSED = [
    "/admin/",
    "/media/",
    "/media/abc",
    "/media/" + "0" * 32,  # no such upload
    "/media/" + "0" * 32 + "/x",
    "//example.org/a.png",
    "http://example.org/a.png",
    "HTTPS://example.org/a.png",
    "javascript:alert(1)",
    "data:image/png;base64,iVBORw0KGgo=",
    "ftp://example.org/a.png",
    "https://",
    "https:///a.png",
    "https://user:secret@example.org/a.png",
    "https://user@example.org/a.png",
    "https://example.org/a b.png",
    "https://example.org/a\tb.png",
    "https://exa\u200bmple.org/a.png",
    "https://example.org/<script>.png",
    'https://example.org/a".png',
    "https://example.org\\@evil.example/a.png",
    "https://example.org:99999/a.png",
    "https://-bad-.example/a.png",
    "https://[not-ipv6]/a.png",
    "https://localhost/admin/",  # this server itself (the test client's host)
    "https://LOCALHOST:8443/media/x",
    "https://example.org/" + "a" * (501 - len("https://example.org/")),
    "x" * 2001,  # over the payload's cap: invalid_input
]


def code_of(response) -> str | None:
    body = response.get_json(silent=True) or {}
    return body.get("error", {}).get("code")


def refused_as_invalid_avatar(response) -> None:
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "invalid_avatar", error
    assert set(error["fields"]) == {"avatar_url"}


def avatar_upload(http, size=(40, 30)) -> dict:
    return uploaded(http, image_bytes("PNG", size), "face.png", purpose="avatar")


def message_upload(http) -> dict:
    return uploaded(http, image_bytes("PNG", (20, 20)), "photo.png")


@pytest.fixture
def people(app, make_user, login, befriend):
    """Alice (two devices, sockets), Bob and Carol (friends of Alice); a group Alice owns with
    Bob as a plain member and Carol as an admin."""
    alice_id, bob_id, carol_id = make_user("alice"), make_user("bob"), make_user("carol")
    befriend(alice_id, bob_id)
    befriend(alice_id, carol_id)
    alice, laptop = connect(app, login("alice")), connect(app, login("alice"))
    bob, carol = login("bob"), login("carol")
    group = alice.http.post("/api/v1/groups", json={"name": "Club", "member_ids": [bob_id, carol_id]})
    group_id = group.get_json()["group"]["id"]
    role = alice.http.put(f"/api/v1/groups/{group_id}/members/{carol_id}/role", json={"role": "admin"})
    assert role.status_code == 200, role.get_json()
    for device in (alice, laptop):
        device.received()
    return alice, laptop, bob, carol, group_id


def me(http) -> dict:
    return http.get(ME).get_json()["user"]


def group_of(http, group_id: int) -> dict:
    return http.get(f"/api/v1/groups/{group_id}").get_json()["group"]


# --- the rule itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("link", ACCEPTED_LINKS)
def test_well_formed_https_links_are_accepted(app, link):
    with app.test_request_context("/"):
        assert avatars.check(link, actor_id=1) == link


@pytest.mark.parametrize("value", [v for v in REFUSED if len(v) <= 2000])
def test_everything_else_is_invalid_avatar(app, value):
    with app.test_request_context("/"), pytest.raises(ApiError) as refused:
        avatars.check(value, actor_id=1)
    error = refused.value
    assert (error.code, error.status, set(error.fields)) == ("invalid_avatar", 400, {"avatar_url"})


def test_empty_clears_and_the_stored_value_stays_acceptable(app):
    with app.test_request_context("/"):
        assert avatars.check(None, actor_id=1) is None
        assert avatars.check("", actor_id=1) is None
        # An avatar set under older rules does not stop a form with other changes from saving.
        assert avatars.check("/admin/", actor_id=1, current="/admin/") == "/admin/"


def test_a_link_to_the_public_base_url_host_is_refused(app, monkeypatch):
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", "https://chat.example.com")
    with app.app_context():
        with pytest.raises(ApiError):
            avatars.check("https://chat.example.com/admin/", actor_id=1)
        assert avatars.check("https://cdn.example.com/a.png", actor_id=1) == "https://cdn.example.com/a.png"


def test_outside_pictures_are_kept_only_when_acceptable(app):
    with app.test_request_context("/"):
        assert avatars.link_or_none("https://avatars.githubusercontent.com/u/1?v=4") is not None
        assert avatars.link_or_none("http://avatars.githubusercontent.com/u/1") is None
        assert avatars.link_or_none("javascript:alert(1)") is None
        assert avatars.link_or_none(None) is None


# --- a user's own profile ----------------------------------------------------------------------


def test_a_user_sets_their_own_avatar_upload_a_link_and_clears_it(people, client):
    alice, laptop, *_ = people
    mine = avatar_upload(alice.http)
    for value in (mine["url"], mine["thumb"], "https://example.org/a.png"):
        answer = alice.http.patch(ME, json={"avatar_url": value})
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["user"]["avatar_url"] == value
    # Everyone may fetch an avatar upload, signed in or not.
    assert fetch(client, mine["url"]).status_code == 200
    assert fetch(client, mine["thumb"]).status_code == 200
    for empty in (None, ""):
        alice.http.patch(ME, json={"avatar_url": "https://example.org/a.png"})
        assert alice.http.patch(ME, json={"avatar_url": empty}).get_json()["user"]["avatar_url"] is None


@pytest.mark.parametrize("value", REFUSED)
def test_a_user_patch_refuses_every_other_form_and_changes_nothing(people, value):
    alice, *_ = people
    alice.http.patch(ME, json={"avatar_url": "https://example.org/before.png"})
    before = me(alice.http)
    answer = alice.http.patch(ME, json={"nickname": "Changed", "avatar_url": value})
    if len(value) > 2000:
        assert (answer.status_code, code_of(answer)) == (400, "invalid_input")
    else:
        refused_as_invalid_avatar(answer)
    assert me(alice.http) == before


def test_uploads_that_are_not_your_avatar_are_refused(people):
    alice, _, bob, *_ = people
    bobs = avatar_upload(bob)
    photo = message_upload(alice.http)
    before = me(alice.http)
    for value in (bobs["url"], bobs["thumb"], photo["url"], photo["thumb"]):
        refused_as_invalid_avatar(alice.http.patch(ME, json={"avatar_url": value}))
    assert me(alice.http) == before


def test_profile_changes_reach_every_device_of_the_user(people):
    alice, laptop, *_ = people
    mine = avatar_upload(alice.http)
    alice.http.patch(ME, json={"nickname": "Alice A.", "avatar_url": mine["url"]})
    for device in (alice, laptop):
        updates = device.received("me:update")
        assert [(u["nickname"], u["avatar_url"]) for u in updates] == [("Alice A.", mine["url"])]
        assert {"is_admin", "locale", "has_password"} <= set(updates[0])
    refused_as_invalid_avatar(alice.http.patch(ME, json={"avatar_url": "/admin/"}))
    assert laptop.received("me:update") == []


# --- the /account form -------------------------------------------------------------------------


def test_the_account_form_takes_the_same_rule(people):
    alice, _, bob, *_ = people
    page = alice.http.get("/account")
    form = {
        "csrf_token": csrf_from(page),
        "profile-nickname": "Alice",
        "profile-signature": "",
        "profile-avatar_url": "/admin/",
    }
    refused = alice.http.post("/account", data=form)
    assert refused.status_code == 400
    assert b"an avatar you uploaded (/media/&lt;id&gt;) or an https:// link" in refused.data
    assert me(alice.http)["avatar_url"] is None
    bobs = avatar_upload(bob)
    assert alice.http.post("/account", data={**form, "profile-avatar_url": bobs["url"]}).status_code == 400
    assert me(alice.http)["avatar_url"] is None
    mine = avatar_upload(alice.http)
    saved = alice.http.post("/account", data={**form, "profile-avatar_url": f"  {mine['url']}  "})
    assert saved.status_code == 302
    assert me(alice.http)["avatar_url"] == mine["url"]
    cleared = alice.http.post("/account", data={**form, "profile-avatar_url": ""})
    assert cleared.status_code == 302
    assert me(alice.http)["avatar_url"] is None


# --- groups ------------------------------------------------------------------------------------


def test_owner_and_admins_set_their_own_uploads_or_links_and_clear(people):
    alice, _, _, carol, group_id = people
    owners = avatar_upload(alice.http)
    admins = avatar_upload(carol)
    url = f"/api/v1/groups/{group_id}"
    for http, value in (
        (alice.http, owners["url"]),
        (carol, admins["thumb"]),
        (alice.http, "https://e.org/g.png"),
    ):
        answer = http.patch(url, json={"avatar_url": value})
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["group"]["avatar_url"] == value
    # The owner may not name the admin's upload, but may save other settings with it unchanged.
    carol.patch(url, json={"avatar_url": admins["url"]})
    refused_as_invalid_avatar(alice.http.patch(url, json={"avatar_url": admins["thumb"]}))
    again = alice.http.patch(url, json={"avatar_url": admins["url"], "intro": "hi"})
    assert again.status_code == 200, again.get_json()
    assert (again.get_json()["group"]["avatar_url"], again.get_json()["group"]["intro"]) == (
        admins["url"],
        "hi",
    )
    assert alice.http.patch(url, json={"avatar_url": None}).get_json()["group"]["avatar_url"] is None
    alice.http.patch(url, json={"avatar_url": "https://e.org/g.png"})
    assert alice.http.patch(url, json={"avatar_url": ""}).get_json()["group"]["avatar_url"] is None


def test_group_avatar_refusals_change_nothing(people):
    alice, _, bob, carol, group_id = people
    url = f"/api/v1/groups/{group_id}"
    alice.http.patch(url, json={"avatar_url": "https://e.org/before.png"})
    before = group_of(alice.http, group_id)
    others = avatar_upload(carol)  # an admin's upload, named by the owner
    photo = message_upload(alice.http)
    for value in ("/admin/", "http://e.org/g.png", "javascript:alert(1)", others["url"], photo["url"]):
        refused_as_invalid_avatar(alice.http.patch(url, json={"name": "Renamed", "avatar_url": value}))
    # A plain member may not change it at all, even to their own avatar upload.
    bobs = avatar_upload(bob)
    answer = bob.patch(url, json={"avatar_url": bobs["url"]})
    assert (answer.status_code, code_of(answer)) == (403, "forbidden")
    assert group_of(alice.http, group_id) == before


# --- the server API ----------------------------------------------------------------------------


def test_the_server_api_names_any_avatar_upload_or_a_link(people, api_key, client):
    alice, _, _, carol, group_id = people
    key, api = api_key(), client
    alices = avatar_upload(alice.http)
    photo = message_upload(alice.http)
    made = api.post(f"{SERVER}/users", json={"external_id": "e-1", "avatar_url": alices["url"]}, headers=key)
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["user"]["avatar_url"] == alices["url"]
    user_id = made.get_json()["user"]["id"]
    for value in (alices["thumb"], "https://e.org/u.png"):
        answer = api.patch(f"{SERVER}/users/{user_id}", json={"avatar_url": value}, headers=key)
        assert answer.status_code == 200 and answer.get_json()["user"]["avatar_url"] == value
    for value in ("/admin/", photo["url"], "http://e.org/u.png", "/media/" + "f" * 32):
        refused_as_invalid_avatar(
            api.patch(f"{SERVER}/users/{user_id}", json={"avatar_url": value}, headers=key)
        )
        refused_as_invalid_avatar(
            api.post(f"{SERVER}/users", json={"external_id": "e-2", "avatar_url": value}, headers=key)
        )
        refused_as_invalid_avatar(
            api.patch(f"{SERVER}/groups/{group_id}", json={"avatar_url": value}, headers=key)
        )
    assert (
        api.get(f"{SERVER}/users/{user_id}", headers=key).get_json()["user"]["avatar_url"]
        == "https://e.org/u.png"
    )
    assert api.get(f"{SERVER}/users/by-external-id/e-2", headers=key).status_code == 404
    cleared = api.patch(f"{SERVER}/users/{user_id}", json={"avatar_url": None}, headers=key)
    assert cleared.get_json()["user"]["avatar_url"] is None
    # Groups: any avatar upload, a link, null clears; create with one too.
    carols = avatar_upload(carol)
    answer = api.patch(f"{SERVER}/groups/{group_id}", json={"avatar_url": carols["url"]}, headers=key)
    assert answer.status_code == 200 and answer.get_json()["group"]["avatar_url"] == carols["url"]
    answer = api.patch(f"{SERVER}/groups/{group_id}", json={"avatar_url": None}, headers=key)
    assert answer.get_json()["group"]["avatar_url"] is None
    owner_id = alice.user_id
    created = api.post(
        f"{SERVER}/groups", json={"owner_id": owner_id, "name": "G", "avatar_url": alices["url"]}, headers=key
    )
    assert created.status_code == 201 and created.get_json()["group"]["avatar_url"] == alices["url"]
    refused = api.post(
        f"{SERVER}/groups", json={"owner_id": owner_id, "name": "H", "avatar_url": "/admin/"}, headers=key
    )
    refused_as_invalid_avatar(refused)


def test_an_import_reports_a_bad_avatar_on_its_row(people, api_key, client):
    alice, *_ = people
    key, api = api_key(), client
    photo = message_upload(alice.http)
    rows = [
        {"external_id": "ok-1", "avatar_url": "https://e.org/1.png"},
        {"external_id": "bad-1", "avatar_url": "/admin/"},
        {"external_id": "bad-2", "avatar_url": photo["url"]},
        {"external_id": "ok-2"},
    ]
    body = api.post(f"{SERVER}/users/import", json={"users": rows}, headers=key).get_json()
    assert [(u["external_id"], u["avatar_url"]) for u in body["created"]] == [
        ("ok-1", "https://e.org/1.png"),
        ("ok-2", None),
    ]
    assert [(e["index"], e["error"]["code"], set(e["error"]["fields"])) for e in body["errors"]] == [
        (1, "invalid_avatar", {"avatar_url"}),
        (2, "invalid_avatar", {"avatar_url"}),
    ]


# --- keeping avatar uploads ----------------------------------------------------------------------


def test_cleanup_keeps_the_avatars_users_and_groups_show(app, people, runner):
    alice, _, _, carol, group_id = people
    users = avatar_upload(alice.http)
    groups = avatar_upload(carol)
    unused = avatar_upload(carol)
    alice.http.patch(ME, json={"avatar_url": users["thumb"]})
    carol.patch(f"/api/v1/groups/{group_id}", json={"avatar_url": groups["url"]})
    with app.app_context():
        db.session.execute(update(Upload).values(created_at=utcnow() - timedelta(days=2)))
        db.session.commit()
    result = runner.invoke(args=["cleanup-uploads"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        left = set(db.session.scalars(select(Upload.id)))
    assert {users["id"], groups["id"]} <= left
    assert unused["id"] not in left
