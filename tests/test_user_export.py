"""Users' data exports (app/export): asked for over the API, built by the queued job into a zip that
holds exactly the user's own data, served by its link to its owner only for a day, swept once
expired; one pending at a time and a few a day; a failed build leaves no file.

The build jobs are held back (queue.execute is swapped for a collector) and run by the test when
it chooses, so nothing waits on a greenlet; time moves by passing `now` or patching the clock.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import timedelta

import gevent
import pytest
from sqlalchemy import select

from app.chat.actions.hides import hide
from app.chat.actions.recall import recall
from app.chat.conversations import open_direct
from app.chat.send import send_message
from app.export import archive
from app.export import services as exports
from app.extensions import db
from app.groups.services import create_group, invite
from app.jobs import periodic, queue, schedule
from app.media.storage import get_storage
from app.models import ConversationMember, Upload, utcnow
from app.models.operations import UserExport
from app.social import services as social
from tests.chat_helpers import connect, new_client_msg_id
from tests.test_media import image_bytes, uploaded

assert periodic  # registers the periodic jobs


@pytest.fixture
def jobs(monkeypatch):
    """The export jobs queued by requests, held until `run()` executes them."""
    held: list = []
    execute = queue.execute
    monkeypatch.setattr(queue, "execute", lambda app, job, now=None: held.append(job))

    class Held:
        def run(self, app) -> list[str]:
            gevent.sleep(0)  # the greenlets spawned after the commits hand their jobs over
            outcomes = [execute(app, job) for job in held]
            held.clear()
            return outcomes

        def __len__(self):
            gevent.sleep(0)
            return len(held)

    return Held()


def say(app, user_id: int, conversation_id: int, text: str, body: dict | None = None) -> int:
    with app.app_context():
        message, _ = send_message(
            user_id, conversation_id, new_client_msg_id(), body or {"type": "txt", "msg": text}
        )
        return message["seq"]


@pytest.fixture
def world(app, make_user, login, befriend):
    """Alice, friends with Bob and Carol, who blocked Dave; a direct chat with Bob (one message
    hidden for her, one recalled, a photo she sent); the group Team she joined after its first
    message; and a chat between Bob and Carol she is not in."""
    alice, bob, carol, dave = (make_user(name) for name in ("alice", "bob", "carol", "dave"))
    befriend(alice, bob)
    befriend(alice, carol)
    befriend(bob, carol)
    alice_http, bob_http = login("alice"), login("bob")
    photo = image_bytes("PNG", (12, 12))
    mine = uploaded(alice_http, photo, "me.png")
    theirs = uploaded(bob_http, image_bytes("PNG", (14, 14)), "bob.png")
    with app.app_context():
        social.block_user(alice, dave)
        direct = open_direct(alice, bob)[0]["id"]
        pair = open_direct(bob, carol)[0]["id"]
    say(app, alice, direct, "hi bob")
    say(app, bob, direct, "hi alice")
    hidden = say(app, bob, direct, "hidden for alice")
    recalled = say(app, alice, direct, "oops recalled")
    say(app, alice, direct, "", {"type": "img", "upload_id": mine["id"]})
    say(app, bob, direct, "", {"type": "img", "upload_id": theirs["id"]})
    say(app, bob, pair, "secret between bob and carol")
    with app.app_context():
        hide(alice, direct, [hidden])
        recall(alice, direct, recalled)
        group = create_group(bob, "Team", [carol])
        group_id, group_conversation = group.id, group.conversation_id
    say(app, bob, group_conversation, "before alice joined")
    with app.app_context():
        invite(bob, group_id, [alice])
    say(app, carol, group_conversation, "after alice joined")
    return {
        "ids": {"alice": alice, "bob": bob, "carol": carol, "dave": dave},
        "alice": alice_http,
        "bob": bob_http,
        "direct": direct,
        "pair": pair,
        "group": group_conversation,
        "photo": (mine, photo),
        "theirs": theirs,
    }


def ask(client, status: int = 202) -> dict:
    response = client.post("/api/v1/auth/me/exports", json={})
    assert response.status_code == status, response.get_json()
    return response.get_json()


def fetch(client, url: str):
    """GET `url`, the body read and the file closed (a zip is served from an open file)."""
    response = client.get(url)
    response.get_data()
    response.close()
    return response


def listed(client) -> list[dict]:
    response = client.get("/api/v1/auth/me/exports")
    assert response.status_code == 200
    return response.get_json()["exports"]


def read_zip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive_file:
        return {name: archive_file.read(name) for name in archive_file.namelist()}


def texts(conversation: dict) -> list:
    return [
        message["body"]["msg"]
        for message in conversation["messages"]
        if message["type"] == "txt" and not message["recalled"]
    ]


def test_the_zip_holds_exactly_the_users_own_data(app, world, jobs):
    alice = world["alice"]
    device = connect(app, alice)
    device.received()
    answer = ask(alice)["export"]
    assert answer["state"] == "pending" and answer["url"] is None
    assert jobs.run(app) == ["done"]
    [ready] = device.received("export:ready")
    [row] = listed(alice)
    assert ready["export"] == row
    assert row["state"] == "ready" and row["url"].startswith("/export/") and row["size"] > 0

    response = fetch(alice, row["url"])
    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    files = read_zip(response.data)
    mine, photo = world["photo"]
    with app.app_context():  # hers: with Bob, with Carol (made when they became friends), Team
        conversations = set(
            db.session.scalars(
                select(ConversationMember.conversation_id).where(
                    ConversationMember.user_id == world["ids"]["alice"]
                )
            )
        )
    assert world["pair"] not in conversations and len(conversations) == 3
    assert set(files) == {
        "profile.json",
        "contacts.json",
        *(f"conversations/{conversation_id}.json" for conversation_id in conversations),
        "uploads.json",
        f"uploads/{mine['id']}.png",
    }

    profile = json.loads(files["profile.json"])
    assert profile["account"]["username"] == "alice"
    assert profile["settings"] == {"locale": None, "notification_previews": True}
    assert len(profile["devices"]) == 1 and profile["devices"][0]["user_agent"] == "pytest"
    contacts = json.loads(files["contacts.json"])
    assert sorted(friend["user"]["username"] for friend in contacts["friends"]) == ["bob", "carol"]
    assert [blocked["user"]["username"] for blocked in contacts["blocked"]] == ["dave"]
    assert [(item["group"]["name"], item["role"]) for item in contacts["groups"]] == [("Team", "member")]

    direct = json.loads(files[f"conversations/{world['direct']}.json"])
    assert direct["conversation"]["kind"] == "direct" and direct["conversation"]["name"] == "bob"
    assert {member["username"] for member in direct["conversation"]["members"]} == {"alice", "bob"}
    assert texts(direct) == ["hi bob", "hi alice"]  # hidden for her: left out; recalled: no text
    recalled = [message for message in direct["messages"] if message["recalled"]]
    assert len(recalled) == 1 and recalled[0]["body"]["recalled"] is True
    assert [message["body"]["upload_id"] for message in direct["messages"] if message["type"] == "img"] == [
        mine["id"],
        world["theirs"]["id"],
    ]
    group = json.loads(files[f"conversations/{world['group']}.json"])
    assert group["conversation"]["name"] == "Team"
    assert {member["username"] for member in group["conversation"]["members"]} == {"alice", "bob", "carol"}
    assert texts(group) == ["after alice joined"]
    everything = b"".join(files.values())
    for never in (b"hidden for alice", b"oops recalled", b"before alice joined", b"secret between"):
        assert never not in everything

    uploads = json.loads(files["uploads.json"])
    assert [(item["id"], item["file"]) for item in uploads] == [(mine["id"], f"uploads/{mine['id']}.png")]
    with app.app_context():
        stored = db.session.scalar(select(Upload.storage_key).where(Upload.id == mine["id"]))
        with get_storage().open(stored) as handle:
            assert files[f"uploads/{mine['id']}.png"] == handle.read()


def test_a_group_left_lists_no_members_and_never_those_who_joined_after(
    app, world, jobs, make_user, befriend
):
    from app.groups.services import leave
    from app.models import Group

    bob = world["ids"]["bob"]
    with app.app_context():
        group_id = db.session.scalar(select(Group.id).where(Group.conversation_id == world["group"]))
        leave(world["ids"]["alice"], group_id)
    newcomer = make_user("zoe_late")
    befriend(bob, newcomer)
    with app.app_context():
        invite(bob, group_id, [newcomer])
    say(app, newcomer, world["group"], "hello from the newcomer")
    ask(world["alice"])
    assert jobs.run(app) == ["done"]
    [row] = listed(world["alice"])
    files = read_zip(fetch(world["alice"], row["url"]).data)
    group = json.loads(files[f"conversations/{world['group']}.json"])
    assert group["conversation"]["you_are_member"] is False and group["conversation"]["members"] == []
    assert texts(group) == ["after alice joined"]
    everything = b"".join(files.values())
    assert b"zoe_late" not in everything and b"hello from the newcomer" not in everything


def test_the_link_serves_its_owner_only(app, world, jobs):
    ask(world["alice"])
    jobs.run(app)
    [row] = listed(world["alice"])
    # Another user, a stranger to the link, and nobody signed in: as for an unknown link.
    assert world["bob"].get(row["url"]).status_code == 404
    assert listed(world["bob"]) == []
    anonymous = app.test_client().get(row["url"])
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    for wrong in (
        "/export/" + "x" * 43,
        "/export/short",
        row["url"][:-1] + ("A" if row["url"][-1] != "A" else "B"),
    ):
        response = world["alice"].get(wrong, headers={"Accept": "application/json"})
        assert response.status_code == 404
    assert fetch(world["alice"], row["url"]).status_code == 200


def test_while_pending_the_link_is_not_ready_and_a_second_request_is_refused(app, world, jobs):
    alice = world["alice"]
    ask(alice)
    error = ask(alice, 409)["error"]
    assert error["code"] == "export_pending"
    with app.app_context():
        row = db.session.scalar(select(UserExport))
        url = f"/export/{exports.secret_of(row)}"
    assert alice.get(url).status_code == 409
    assert len(listed(alice)) == 1 and len(jobs) == 1


def test_at_most_a_few_a_day(app, world, jobs, monkeypatch):
    alice = world["alice"]
    for _ in range(3):
        ask(alice)
        jobs.run(app)
    response = alice.post("/api/v1/auth/me/exports", json={})
    assert response.status_code == 429
    assert response.get_json()["error"]["code"] == "too_many_exports"
    assert int(response.headers["Retry-After"]) > 0
    assert len(listed(alice)) == 3 and len(jobs) == 0
    # A day later the oldest no longer counts.
    later = utcnow() + timedelta(hours=24, minutes=1)
    with app.app_context():
        exports.request_export(world["ids"]["alice"], now=later)
    assert len(listed(alice)) == 4


def test_bad_input_is_refused_and_changes_nothing(app, world, jobs):
    response = world["alice"].post("/api/v1/auth/me/exports", json={"user_id": world["ids"]["bob"]})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_input"
    assert app.test_client().post("/api/v1/auth/me/exports", json={}).status_code == 401
    assert listed(world["alice"]) == [] and len(jobs) == 0


def test_the_link_expires_after_a_day_and_the_sweep_removes_the_file(app, world, jobs, monkeypatch):
    alice = world["alice"]
    ask(alice)
    jobs.run(app)
    [row] = listed(alice)
    with app.app_context():
        path = archive.zip_path(row["id"])
    assert path.is_file()
    later = utcnow() + timedelta(hours=24, seconds=1)
    with monkeypatch.context() as patch:
        patch.setattr(exports, "utcnow", lambda: later)
        assert alice.get(row["url"]).status_code == 410  # the page
        response = alice.get(row["url"], headers={"Content-Type": "application/json"})
        assert response.status_code == 410
        assert response.get_json()["error"]["code"] == "export_expired"
        [expired] = listed(alice)
        assert expired["expired"] is True and expired["url"] is None
    assert path.is_file()  # until the sweep
    assert "exports.cleanup" in schedule.run_due(app, now=later)
    assert not path.exists()
    assert listed(alice) == []


def test_the_sweep_keeps_live_exports(app, world, jobs):
    ask(world["alice"])
    jobs.run(app)
    [row] = listed(world["alice"])
    with app.app_context():
        assert exports.remove_expired(utcnow() + timedelta(hours=23)) == 0
        assert archive.zip_path(row["id"]).is_file()
    assert fetch(world["alice"], row["url"]).status_code == 200


def test_a_failed_build_is_marked_failed_and_leaves_no_file(app, world, jobs, monkeypatch):
    alice = world["alice"]
    ask(alice)

    def broken(archive_file, user_id):
        archive_file.writestr("partial.json", b"{}")
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(archive, "_write_uploads", broken)
        assert jobs.run(app) == ["done"]  # recorded as failed, not retried
    [row] = listed(alice)
    assert row["state"] == "failed" and row["error"] == "OSError" and row["url"] is None
    with app.app_context():
        folder = archive.folder()
        assert not [path for path in folder.iterdir() if path.name.startswith(f"{row['id']}.")]
        secret = exports.secret_of(db.session.get(UserExport, row["id"]))
    assert alice.get(f"/export/{secret}").status_code == 409
    ask(alice)  # a failed export does not block the next
    assert jobs.run(app) == ["done"]
    assert [item["state"] for item in listed(alice)] == ["ready", "failed"]


def test_a_build_pending_for_a_day_is_marked_failed_by_the_sweep(app, world, jobs):
    ask(world["alice"])
    with app.app_context():
        exports.remove_expired(utcnow() + timedelta(hours=24, minutes=1))
    [row] = listed(world["alice"])
    assert row["state"] == "failed"
    assert jobs.run(app) == ["done"]  # the late job leaves a failed export alone
    assert listed(world["alice"])[0]["state"] == "failed"


def row_of(app, export_id: int) -> tuple:
    with app.app_context():
        row = db.session.get(UserExport, export_id)
        return row.state, row.error, row.finished_at


def test_a_build_pending_past_its_time_limit_no_longer_blocks_a_new_request(app, world, jobs, monkeypatch):
    """Its build died: the next request marks it failed, removes what it left and is accepted."""
    monkeypatch.setitem(app.config, "EXPORT_TIMEOUT_SECONDS", 10)
    alice_id = world["ids"]["alice"]
    long_ago = utcnow() - timedelta(seconds=10) - exports.STALE_MARGIN - timedelta(seconds=5)
    with app.app_context():
        old = exports.request_export(alice_id, now=long_ago).id
        archive.folder().mkdir(parents=True, exist_ok=True)
        part = archive.folder() / f"{old}.zip.part"
    part.write_bytes(b"half a zip")
    new = ask(world["alice"])["export"]
    assert new["state"] == "pending" and new["id"] != old
    state, error, finished_at = row_of(app, old)
    assert (state, error) == ("failed", "The build did not finish.") and finished_at is not None
    assert not part.exists()
    assert jobs.run(app) == ["done", "done"]  # the old job leaves its failed export alone
    assert [(item["id"], item["state"]) for item in listed(world["alice"])] == [
        (new["id"], "ready"),
        (old, "failed"),
    ]


def test_a_build_within_its_time_limit_and_margin_still_blocks_and_nothing_changes(
    app, world, jobs, monkeypatch
):
    monkeypatch.setitem(app.config, "EXPORT_TIMEOUT_SECONDS", 10)
    alice_id = world["ids"]["alice"]
    # Past the time limit, not past the margin: its build may still be finishing.
    recent = utcnow() - timedelta(seconds=10) - exports.STALE_MARGIN + timedelta(seconds=20)
    with app.app_context():
        old = exports.request_export(alice_id, now=recent).id
    assert ask(world["alice"], 409)["error"]["code"] == "export_pending"
    assert row_of(app, old) == ("pending", None, None)
    assert [item["id"] for item in listed(world["alice"])] == [old] and len(jobs) == 1


def test_the_sweep_marks_failed_a_build_pending_past_its_time_limit_and_margin(app, world, jobs, monkeypatch):
    monkeypatch.setitem(app.config, "EXPORT_TIMEOUT_SECONDS", 10)
    export_id = ask(world["alice"])["export"]["id"]
    with app.app_context():
        created = db.session.get(UserExport, export_id).created_at
    limit = created + timedelta(seconds=10) + exports.STALE_MARGIN
    with app.app_context():
        exports.remove_expired(limit - timedelta(seconds=1))
    assert row_of(app, export_id) == ("pending", None, None)
    with app.app_context():
        exports.remove_expired(limit + timedelta(seconds=1))
    assert row_of(app, export_id)[:2] == ("failed", "The build did not finish.")
    assert jobs.run(app) == ["done"]  # the late job leaves a failed export alone
    assert listed(world["alice"])[0]["state"] == "failed"


def test_the_account_page_asks_for_an_export_and_shows_its_link(app, world, jobs):
    alice = world["alice"]
    page = alice.get("/account").get_data(as_text=True)
    assert 'id="data"' in page and "Download my data" in page
    assert alice.post("/account/export", data={}).status_code == 400  # csrf_failed
    assert listed(alice) == []
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = alice.post("/account/export", data={"csrf_token": token})
    assert response.status_code == 302
    assert "Being prepared" in alice.get(response.headers["Location"]).get_data(as_text=True)
    again = alice.post("/account/export", data={"csrf_token": token})
    assert "being prepared already" in alice.get(again.headers["Location"]).get_data(as_text=True)
    jobs.run(app)
    [row] = listed(alice)
    assert f'href="{row["url"]}"' in alice.get("/account").get_data(as_text=True)


def test_a_request_takes_the_users_row_lock_before_it_reads(app, world, monkeypatch):
    """Two requests at once are counted one after the other: the first holds the user's row (on
    SQLite the database's write lock) from its first statement, so the second waits instead of
    failing to upgrade its read."""
    import sqlite3

    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    alice_id = world["ids"]["alice"]
    real, probed = archive.placeholder_hash, []

    def probe() -> str:  # runs after the request's reads, before its insert
        if db.engine.dialect.name == "sqlite":
            other = sqlite3.connect(db.engine.url.database, timeout=0, isolation_level=None)
            try:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
            finally:
                other.close()
        else:
            with db.engine.connect() as other, pytest.raises(OperationalError):
                other.execute(text("SELECT id FROM users WHERE id = :id FOR UPDATE NOWAIT"), {"id": alice_id})
        probed.append(True)
        return real()

    monkeypatch.setattr(archive, "placeholder_hash", probe)
    with app.app_context():
        row = exports.request_export(alice_id)
        assert row.state == "pending"
    assert probed == [True]
