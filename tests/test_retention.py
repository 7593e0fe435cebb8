"""The retention policy (app/retention.py): old messages and the media only they carried go, in
bounded batches, once across processes; history, catch-up, search, unread counts and the
conversation list agree with what is left."""

from __future__ import annotations

import itertools
import threading
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import event, func, select, update

from app import retention, settings
from app.extensions import db
from app.jobs import periodic, schedule
from app.models import (
    AuditLog,
    Conversation,
    ConversationMember,
    Message,
    MessageEdit,
    MessageHide,
    MessageMention,
    MessageReaction,
    Upload,
    UploadShare,
    utcnow,
)
from app.moderation import services as moderation
from app.search import messages as search_module
from tests.chat_helpers import connect
from tests.conftest import TEST_DB
from tests.pg_locks import until_waiting_on_a_lock
from tests.test_media import fetch, image_bytes, stored_files, uploaded

_ids = itertools.count(1)


def send(client, conversation_id: int, text: str | None = None, *, body=None, **extras) -> dict:
    payload = {"client_msg_id": f"keep-{next(_ids):08d}", "body": body or {"type": "txt", "msg": text}}
    response = client.post(f"/api/v1/conversations/{conversation_id}/messages", json={**payload, **extras})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["message"]


def age(app, conversation_id: int, seqs, days: float) -> None:
    """Make messages `days` old (as if sent then)."""
    with app.app_context():
        db.session.execute(
            update(Message)
            .where(Message.conversation_id == conversation_id, Message.seq.in_(list(seqs)))
            .values(created_at=utcnow() - timedelta(days=days))
        )
        db.session.commit()


def seqs_of(app, conversation_id: int) -> list[int]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(Message.seq).where(Message.conversation_id == conversation_id).order_by(Message.seq)
            )
        )


def conversation_row(app, conversation_id: int) -> Conversation:
    with app.app_context():
        row = db.session.get(Conversation, conversation_id)
        db.session.expunge(row)
        return row


def set_policy(app, actor_id: int, days: int) -> None:
    with app.app_context():
        settings.set_value(actor_id, "retention_days", days)


def set_group_policy(app, actor_id: int, group_id: int, days: int | None) -> None:
    with app.app_context():
        settings.set_group_retention(actor_id, group_id, days)


def purge(app, **kwargs) -> retention.Outcome:
    with app.app_context():
        return retention.purge(**kwargs)


@pytest.fixture
def chat(app, make_user, login, befriend):
    """An owner of the console; Alice and Bob, friends, with their direct conversation."""
    owner = make_user("root", is_admin=True)
    alice_id, bob_id = make_user("alice"), make_user("bob")
    befriend(alice_id, bob_id)
    alice, bob = login("alice"), login("bob")
    direct = alice.post("/api/v1/conversations", json={"user_id": bob_id}).get_json()["conversation"]["id"]
    return owner, alice, bob, direct, alice_id, bob_id


def make_group(client, name: str, member_ids: list[int]) -> dict:
    response = client.post("/api/v1/groups", json={"name": name, "member_ids": member_ids})
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()["group"]


# --- the policy -----------------------------------------------------------------------------------


def test_with_the_default_policy_nothing_is_deleted(app, chat):
    owner, alice, bob, direct, *_ = chat
    for n in range(3):
        send(alice, direct, f"old message {n}")
    age(app, direct, [1, 2, 3], 5000)
    with app.app_context():
        assert settings.get("retention_days") == 0
    assert purge(app).messages == 0
    assert seqs_of(app, direct) == [1, 2, 3]
    assert conversation_row(app, direct).purged_seq == 0


def test_old_messages_and_the_media_only_they_carry_go_newer_ones_and_shared_media_stay(app, chat):
    owner, alice, bob, direct, alice_id, bob_id = chat
    files_before = stored_files(app)
    forwarded = uploaded(alice, image_bytes("PNG", (12, 12)), "forwarded.png")
    alone = uploaded(alice, image_bytes("PNG", (14, 14)), "alone.png")
    recent = uploaded(alice, image_bytes("PNG", (16, 16)), "recent.png")
    first = send(alice, direct, body={"type": "img", "upload_id": forwarded["id"]})  # 1
    send(alice, direct, body={"type": "img", "upload_id": alone["id"]})  # 2
    send(alice, direct, "an ancient remark")  # 3
    base = f"/api/v1/conversations/{direct}/messages"
    assert bob.put(f"{base}/3/reactions/{quote('👍', safe='')}", json={}).status_code == 200
    assert (
        alice.patch(f"{base}/3", json={"msg": "an ancient remark, edited", "version": 0}).status_code == 200
    )
    assert bob.post(f"{base}/hide", json={"seqs": [2]}).status_code == 200
    assert alice.put(f"/api/v1/conversations/{direct}/pins/3", json={}).status_code == 200
    with app.app_context():
        files_of = {
            row.id: {row.storage_key, row.thumb_key} - {None} for row in db.session.scalars(select(Upload))
        }
    # Later: the first picture forwarded (it shares the upload), a reply to the text, a new picture.
    copy = alice.post(
        "/api/v1/messages/forward",
        json={
            "conversation_id": direct,
            "seqs": [first["seq"]],
            "mode": "separate",
            "targets": [{"conversation_id": direct, "client_msg_id": f"keep-{next(_ids):08d}"}],
        },
    )
    assert copy.status_code == 200, copy.get_json()
    reply = send(bob, direct, "answering that", reply_to=3)  # 5
    assert reply["reply"]["text"].startswith("an ancient remark")
    send(alice, direct, body={"type": "img", "upload_id": recent["id"]})  # 6
    assert alice.put(f"/api/v1/conversations/{direct}/pins/6", json={}).status_code == 200
    age(app, direct, [1, 2, 3], 40)
    set_policy(app, owner, 30)

    outcome = purge(app)

    assert (outcome.messages, outcome.uploads, outcome.conversations) == (3, 1, 1)
    assert seqs_of(app, direct) == [4, 5, 6]
    row = conversation_row(app, direct)
    assert row.purged_seq == 3
    assert [pin["seq"] for pin in row.pins] == [6]
    with app.app_context():
        for model in (MessageReaction, MessageEdit, MessageHide, MessageMention):
            assert db.session.scalar(select(func.count()).select_from(model)) == 0, model
        # The forwarded picture stays, unbound, shared by the copy that still carries it.
        kept = db.session.get(Upload, forwarded["id"])
        copy_id = db.session.scalar(
            select(Message.id).where(Message.conversation_id == direct, Message.seq == 4)
        )
        assert kept.message_id is None
        assert db.session.execute(select(UploadShare.upload_id, UploadShare.message_id)).all() == [
            (forwarded["id"], copy_id)
        ]
        assert db.session.get(Upload, alone["id"]) is None
        assert db.session.get(Upload, recent["id"]) is not None
        quoted = db.session.scalar(select(Message).where(Message.conversation_id == direct, Message.seq == 5))
        assert quoted.reply == {
            "seq": 3,
            "type": "txt",
            "sender": quoted.reply["sender"],
            "purged": True,
            "text": "",
        }
    root = Path(app.config["UPLOAD_FOLDER"])
    files_now = stored_files(app)
    assert not {root / key for key in files_of[alone["id"]]} & files_now
    assert {root / key for key in files_of[forwarded["id"]]} <= files_now
    assert len(files_now - files_before) == len(files_of[forwarded["id"]]) + len(files_of[recent["id"]])
    # Bob still sees the forwarded picture and the new one; the purged one is gone for everyone.
    assert fetch(bob, forwarded["url"]).status_code == 200
    assert fetch(bob, recent["url"]).status_code == 200
    assert fetch(alice, alone["url"]).status_code == 404
    # The reply shows its quote as purged, on the page and through catch-up.
    page = bob.get(base).get_json()
    assert [m["seq"] for m in page["messages"]] == [4, 5, 6] and page["has_more"] is False
    assert page["messages"][1]["reply"]["purged"] is True and page["messages"][1]["reply"]["text"] == ""
    # Nothing is left for the upload cleanup to take: the kept picture is shared.
    with app.app_context():
        from app.media import services as media

        assert media.cleanup_uploads(older_than=timedelta(0)) == 0


def test_pictures_forwarded_together_as_a_chat_history_stay_while_the_history_does(app, chat):
    """A merged forward shares several uploads through one message; a separate forward's message
    may share one while an upload of its own is purged too. Nothing is lost, nothing fails."""
    owner, alice, bob, direct, *_ = chat
    one = uploaded(alice, image_bytes("PNG", (12, 12)), "one.png")
    two = uploaded(alice, image_bytes("PNG", (14, 14)), "two.png")
    send(alice, direct, body={"type": "img", "upload_id": one["id"]})  # 1
    send(alice, direct, body={"type": "img", "upload_id": two["id"]})  # 2
    merged = alice.post(
        "/api/v1/messages/forward",
        json={
            "conversation_id": direct,
            "seqs": [1, 2],
            "mode": "merged",
            "targets": [{"conversation_id": direct, "client_msg_id": f"keep-{next(_ids):08d}"}],
        },
    )
    assert merged.status_code == 200, merged.get_json()  # 3
    root = Path(app.config["UPLOAD_FOLDER"])
    with app.app_context():
        files = {
            row.id: {row.storage_key, row.thumb_key} - {None} for row in db.session.scalars(select(Upload))
        }
    age(app, direct, [1, 2], 40)
    set_policy(app, owner, 30)

    outcome = purge(app)

    assert (outcome.messages, outcome.uploads) == (2, 0)
    assert seqs_of(app, direct) == [3]
    for picture in (one, two):
        assert fetch(bob, picture["url"]).status_code == 200
        assert {root / key for key in files[picture["id"]]} <= stored_files(app)
    with app.app_context():
        from app.media import services as media

        assert media.cleanup_uploads(older_than=timedelta(0)) == 0
    for picture in (one, two):
        assert fetch(bob, picture["url"]).status_code == 200
    # When the history goes too, so do the pictures and their files.
    age(app, direct, [3], 40)
    outcome = purge(app)
    assert (outcome.messages, outcome.uploads) == (1, 2)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Upload)) == 0
        assert db.session.scalar(select(func.count()).select_from(UploadShare)) == 0
    assert not {root / key for keys in files.values() for key in keys} & stored_files(app)


def test_a_copy_sharing_a_picture_keeps_it_when_another_purged_picture_is_bound_to_it(app, chat):
    """A share message that holds an upload of its own (bound to it) still keeps the upload it
    shares when both are purged from elsewhere."""
    owner, alice, bob, direct, *_ = chat
    old = uploaded(alice, image_bytes("PNG", (12, 12)), "old.png")
    send(alice, direct, body={"type": "img", "upload_id": old["id"]})  # 1
    merged = alice.post(
        "/api/v1/messages/forward",
        json={
            "conversation_id": direct,
            "seqs": [1],
            "mode": "merged",
            "targets": [{"conversation_id": direct, "client_msg_id": f"keep-{next(_ids):08d}"}],
        },
    )
    assert merged.status_code == 200, merged.get_json()  # 2
    # An upload bound to the history message itself (as a message carrying its own media).
    own = uploaded(alice, image_bytes("PNG", (16, 16)), "own.png")
    with app.app_context():
        history_id = db.session.scalar(
            select(Message.id).where(Message.conversation_id == direct, Message.seq == 2)
        )
        db.session.execute(
            update(Upload).where(Upload.id == own["id"]).values(conversation_id=direct, message_id=history_id)
        )
        db.session.commit()
    age(app, direct, [1], 40)
    set_policy(app, owner, 30)

    assert purge(app).messages == 1
    assert fetch(bob, old["url"]).status_code == 200
    assert fetch(bob, own["url"]).status_code == 200


def test_one_conversation_failing_does_not_stop_the_others(
    app, chat, make_user, befriend, login, monkeypatch
):
    owner, alice, bob, direct, alice_id, _ = chat
    carol_id = make_user("carol")
    befriend(alice_id, carol_id)
    other = alice.post("/api/v1/conversations", json={"user_id": carol_id}).get_json()["conversation"]["id"]
    send(alice, direct, "old in the first")
    send(alice, other, "old in the second")
    age(app, direct, [1], 40)
    age(app, other, [1], 40)
    set_policy(app, owner, 30)
    real = retention.purge_batch

    def failing_first(conversation_id, *args):
        if conversation_id == min(direct, other):
            raise RuntimeError("disk full")
        return real(conversation_id, *args)

    monkeypatch.setattr(retention, "purge_batch", failing_first)
    with pytest.raises(RuntimeError, match="1 conversation"):
        purge(app)
    failed, done = sorted([direct, other])
    assert seqs_of(app, failed) == [1]
    assert seqs_of(app, done) == []
    monkeypatch.setattr(retention, "purge_batch", real)
    assert purge(app).messages == 1
    assert seqs_of(app, failed) == []


def test_media_the_administrators_removed_is_not_kept_through_a_forwarded_copy(app, chat):
    owner, alice, bob, direct, *_ = chat
    picture = uploaded(alice, image_bytes("PNG", (12, 12)), "removed.png")
    first = send(alice, direct, body={"type": "img", "upload_id": picture["id"]})
    forwarded = alice.post(
        "/api/v1/messages/forward",
        json={
            "conversation_id": direct,
            "seqs": [first["seq"]],
            "mode": "separate",
            "targets": [{"conversation_id": direct, "client_msg_id": f"keep-{next(_ids):08d}"}],
        },
    )
    assert forwarded.status_code == 200
    with app.app_context():
        moderation.recall_message(owner, first["id"], "not allowed here")
    assert fetch(bob, picture["url"]).status_code == 403  # the copy does not serve it either
    age(app, direct, [1], 40)
    set_policy(app, owner, 30)
    outcome = purge(app)
    assert (outcome.messages, outcome.uploads) == (1, 1)
    with app.app_context():
        assert db.session.get(Upload, picture["id"]) is None
        assert db.session.scalar(select(func.count()).select_from(UploadShare)) == 0
    assert seqs_of(app, direct) == [2]


def test_a_group_of_its_own_purges_sooner_or_keeps_forever(app, chat):
    owner, alice, bob, direct, alice_id, bob_id = chat
    short = make_group(alice, "Short memory", [bob_id])
    forever = make_group(alice, "Archive", [bob_id])
    follows = make_group(alice, "Follower", [bob_id])
    for conversation_id in (
        direct,
        short["conversation_id"],
        forever["conversation_id"],
        follows["conversation_id"],
    ):
        start = max(seqs_of(app, conversation_id) or [0])  # a group's first rows are system ones
        send(alice, conversation_id, "a hundred days ago")
        send(alice, conversation_id, "ten days ago", mentions=[bob_id] if conversation_id != direct else [])
        age(app, conversation_id, range(1, start + 2), 100)
        age(app, conversation_id, [start + 2], 10)
        send(alice, conversation_id, "today")
    set_policy(app, owner, 30)
    set_group_policy(app, owner, short["id"], 5)
    set_group_policy(app, owner, forever["id"], 0)
    purge(app)
    # The deployment's 30 days: the 100-day-old one goes (and any older system rows).
    assert len(seqs_of(app, direct)) == 2
    assert len(seqs_of(app, follows["conversation_id"])) == 2
    # Its own 5 days: the 10-day-old message goes too; forever: everything stays.
    assert len(seqs_of(app, short["conversation_id"])) == 1
    assert (
        conversation_row(app, short["conversation_id"]).purged_seq
        == seqs_of(app, short["conversation_id"])[0] - 1
    )
    assert conversation_row(app, forever["conversation_id"]).purged_seq == 0
    with app.app_context():
        mentions = db.session.execute(select(MessageMention.conversation_id, MessageMention.seq)).all()
    # Bob's mention rows went with the purged messages; the others stay.
    assert {conversation_id for conversation_id, _ in mentions} == {
        forever["conversation_id"],
        follows["conversation_id"],
    }
    bob_list = {item["id"]: item for item in bob.get("/api/v1/conversations").get_json()["conversations"]}
    assert bob_list[short["conversation_id"]]["unread_mentions"] == 0
    assert bob_list[forever["conversation_id"]]["unread_mentions"] == 1


def test_a_purge_of_more_than_a_batch_commits_batch_by_batch(app, chat, monkeypatch):
    owner, alice, bob, direct, *_ = chat
    for n in range(7):
        send(alice, direct, f"message {n}")
    send(alice, direct, "not old")
    age(app, direct, range(1, 8), 60)
    set_policy(app, owner, 30)
    monkeypatch.setitem(app.config, "RETENTION_BATCH", 3)
    cutoff = utcnow() - timedelta(days=30)
    # One step at a time: each batch is committed by itself, and others see it at once.
    with app.app_context():
        [(due, due_cutoff)] = retention.due_conversations(utcnow())
        assert due == direct and abs(due_cutoff - cutoff) < timedelta(minutes=1)
        step = retention.purge_batch(direct, cutoff, 3)
    assert step.messages == 3 and conversation_row(app, direct).purged_seq == 3
    assert seqs_of(app, direct) == [4, 5, 6, 7, 8]
    assert [m["seq"] for m in bob.get(f"/api/v1/conversations/{direct}/messages").get_json()["messages"]] == [
        4, 5, 6, 7, 8
    ]  # fmt: skip
    # The rest of the run: two more transactions (3, then the last 1), one commit each.
    commits = []
    with app.app_context():
        listener = lambda connection: commits.append(1)  # noqa: E731
        event.listen(db.engine, "commit", listener)
        try:
            outcome = retention.purge()
        finally:
            event.remove(db.engine, "commit", listener)
    assert (outcome.messages, outcome.batches) == (4, 2)
    assert len(commits) == 2
    assert seqs_of(app, direct) == [8] and conversation_row(app, direct).purged_seq == 7


def test_a_run_that_fails_part_way_keeps_its_committed_batches_and_the_next_run_finishes(
    app, chat, monkeypatch
):
    owner, alice, bob, direct, *_ = chat
    for n in range(5):
        send(alice, direct, f"message {n}")
    age(app, direct, range(1, 6), 60)
    set_policy(app, owner, 30)
    monkeypatch.setitem(app.config, "RETENTION_BATCH", 3)
    real, calls = retention._purge_quotes, []

    def failing_second_time(*args):
        calls.append(args)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(*args)

    monkeypatch.setattr(retention, "_purge_quotes", failing_second_time)
    now = utcnow()
    schedule.due(app, now)
    claim = schedule.claim(app, "retention.purge", now=now)
    assert schedule.run(app, claim) == "failed"
    assert seqs_of(app, direct) == [4, 5] and conversation_row(app, direct).purged_seq == 3
    later = now + timedelta(minutes=61)
    assert schedule.run(app, schedule.claim(app, "retention.purge", now=later)) == "done"
    assert seqs_of(app, direct) == [] and conversation_row(app, direct).purged_seq == 5


def test_a_batch_stops_at_the_first_message_not_old_enough(app, chat):
    owner, alice, bob, direct, *_ = chat
    for n in range(4):
        send(alice, direct, f"message {n}")
    age(app, direct, [1, 2, 4], 60)  # 3 is recent (a clock that went back, say)
    set_policy(app, owner, 30)
    assert purge(app).messages == 2
    assert seqs_of(app, direct) == [3, 4]
    assert conversation_row(app, direct).purged_seq == 2  # seq ≤ purged_seq: all gone, always


def test_the_purge_job_runs_once_across_two_processes(app, chat, make_app, monkeypatch):
    owner, alice, bob, direct, *_ = chat
    for n in range(4):
        send(alice, direct, f"message {n}")
    age(app, direct, [1, 2, 3], 60)
    set_policy(app, owner, 30)
    other = make_app()
    now = utcnow()
    assert schedule.PERIODIC["retention.purge"].run is periodic.purge_expired_messages
    assert "retention.purge" in schedule.due(app, now)
    ran: dict[str, list[str]] = {}
    calls: list[str] = []
    real = retention.purge

    def counted(*args, **kwargs):
        calls.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(retention, "purge", counted)

    def claim_and_run(name: str, application) -> None:
        ran[name] = schedule.run_due(application, now=now + timedelta(seconds=1))

    # Both processes claim at the same time (each thread a process, as far as the database knows).
    threads = [
        threading.Thread(target=claim_and_run, args=item, name=item[0]) for item in (("a", app), ("b", other))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    monkeypatch.setattr(retention, "purge", real)
    assert (ran["a"] + ran["b"]).count("retention.purge") == 1
    assert len(calls) == 1
    assert seqs_of(app, direct) == [4]
    # Not again before the interval (60 minutes by default)...
    assert "retention.purge" not in schedule.run_due(other, now=now + timedelta(minutes=59))
    # ...and off with RETENTION_INTERVAL_MINUTES=0.
    off = make_app(RETENTION_INTERVAL_MINUTES="0")
    assert "retention.purge" not in schedule.run_due(off, now=now + timedelta(hours=3))


# --- consistency after a purge ---------------------------------------------------------------------


def listed(client, conversation_id: int) -> dict:
    page = client.get("/api/v1/conversations").get_json()
    return next(item for item in page["conversations"] if item["id"] == conversation_id)


def replay(client, cursor: str = "") -> tuple[list[dict], list[dict], str]:
    messages, conversations = [], []
    while True:
        page = client.get("/api/v1/sync", query_string={"cursor": cursor}).get_json()
        messages += page["messages"]
        conversations += page["conversations"]
        cursor = page["cursor"]
        if not page["has_more"]:
            return messages, conversations, cursor


def test_history_sync_search_and_the_list_agree_with_the_database_after_a_purge(
    app, chat, login, monkeypatch
):
    owner, alice, bob, direct, alice_id, bob_id = chat
    bob_device = connect(app, login("bob"))
    for n in range(5):
        send(alice, direct, f"obsolete notion {n}")
    assert bob.post(f"/api/v1/conversations/{direct}/read", json={"seq": 2}).status_code == 200
    send(alice, direct, "fresh notion 6")
    send(alice, direct, "fresh notion 7")
    age(app, direct, range(1, 6), 90)
    before = listed(bob, direct)
    assert before["unread"] == 5 and before["last_message"]["seq"] == 7
    _, _, cursor = replay(bob)
    bob_device.received()
    set_policy(app, owner, 30)

    purge(app)

    assert bob_device.received() == []  # devices are told nothing special
    with app.app_context():
        member = db.session.get(ConversationMember, (direct, bob_id))
        conversation = db.session.get(Conversation, direct)
        left = db.session.scalar(select(func.count()).where(Message.conversation_id == direct))
        unread_in_db = db.session.scalar(
            select(func.count()).where(
                Message.conversation_id == direct,
                Message.seq > max(member.read_seq, conversation.purged_seq),
                Message.sender_id != bob_id,
            )
        )
    assert (left, unread_in_db, conversation.purged_seq) == (2, 2, 5)
    # The list: the same last message, unread counts only what is left.
    after = listed(bob, direct)
    assert after["unread"] == unread_in_db and after["last_message"]["seq"] == 7
    first_page = bob.get("/api/v1/conversations").get_json()
    assert first_page["unread_total"] == unread_in_db
    # Catch-up from before the purge: the conversation's new summary, no purged message.
    messages, conversations, _ = replay(bob, cursor)
    assert messages == []
    assert [(item["id"], item["unread"]) for item in conversations] == [(direct, unread_in_db)]
    # A fresh catch-up replays only what is left.
    messages, _, _ = replay(bob)
    assert [m["seq"] for m in messages if m["conversation_id"] == direct] == [6, 7]
    # History: the newest page says there is nothing older; pages before the purge are empty.
    base = f"/api/v1/conversations/{direct}/messages"
    page = bob.get(base).get_json()
    assert [m["seq"] for m in page["messages"]] == [6, 7] and page["has_more"] is False
    older = bob.get(base, query_string={"before_seq": 6}).get_json()
    assert older == {"messages": [], "has_more": False}
    around = bob.get(base, query_string={"around_seq": 3}).get_json()
    assert around["messages"] == [] and around["has_more_before"] is False
    newer = bob.get(base, query_string={"after_seq": 0}).get_json()
    assert [m["seq"] for m in newer["messages"]] == [6, 7]
    # Search, from the index and by scanning: only what is left.
    for scan_max in (0, search_module.VISIBLE_SCAN_MAX):
        monkeypatch.setattr(search_module, "VISIBLE_SCAN_MAX", scan_max)
        hits = bob.get("/api/v1/search/messages", query_string={"q": "notion"}).get_json()["hits"]
        assert sorted(hit["message"]["seq"] for hit in hits) == [6, 7]
        assert bob.get("/api/v1/search/messages", query_string={"q": "obsolete"}).get_json()["hits"] == []
    # Reading a purged seq moves nothing backwards; the readers of a purged message: not found.
    assert bob.get(f"{base}/3/readers").status_code == 404
    # The reader catches up: read to the end, nothing unread.
    state = bob.post(f"/api/v1/conversations/{direct}/read", json={"seq": 7}).get_json()
    assert state["unread"] == 0


def test_a_conversation_purged_whole_keeps_its_place_without_a_last_message(app, chat):
    owner, alice, bob, direct, *_ = chat
    send(alice, direct, "one")
    send(alice, direct, "two")
    assert alice.put(f"/api/v1/conversations/{direct}/pins/2", json={}).status_code == 200
    age(app, direct, [1, 2], 400)
    set_policy(app, owner, 365)
    purge(app)
    item = listed(bob, direct)
    assert item["last_message"] is None and item["unread"] == 0 and item["pins"] == []
    assert item["last_seq"] == 2  # seqs go on from where they were
    row = conversation_row(app, direct)
    assert (row.purged_seq, row.pins) == (2, None)
    assert bob.get(f"/api/v1/conversations/{direct}/messages").get_json() == {
        "messages": [],
        "has_more": False,
    }
    # A new message takes the next seq and is the only one there.
    assert send(alice, direct, "three")["seq"] == 3
    assert listed(bob, direct)["unread"] == 1
    assert purge(app).messages == 0


def test_changing_the_policy_is_audited(app, chat):
    owner, *_ = chat
    set_policy(app, owner, 30)
    set_policy(app, owner, 0)
    with app.app_context():
        rows = db.session.scalars(select(AuditLog).order_by(AuditLog.id)).all()
        assert [(row.action, row.admin_id, row.details) for row in rows] == [
            ("setting_changed", owner, {"key": "retention_days", "old": 0, "new": 30}),
            ("setting_changed", owner, {"key": "retention_days", "old": 30, "new": 0}),
        ]


@pytest.mark.parametrize("group_commit", [True, False], ids=["group-commit", "alone"])
def test_a_reply_checked_before_its_original_was_purged_is_stored_with_a_purged_quote(
    app, chat, monkeypatch, group_commit
):
    """The quote is checked before the conversation is locked; a purge that commits in between
    leaves the reply a purged quote, not a 500."""
    monkeypatch.setitem(app.config, "GROUP_COMMIT", group_commit)
    import app.chat.pipeline as pipeline
    import app.chat.send as send_module

    owner, alice, bob, direct, *_ = chat
    original = send(bob, direct, "an old secret")
    age(app, direct, [original["seq"]], 40)
    checked = pipeline.prepare_extras

    def purged_meanwhile(*args, **kwargs):
        extras = checked(*args, **kwargs)
        with app.app_context():  # another greenlet's transaction
            retention.purge_conversation(direct, utcnow() - timedelta(days=30))
        return extras

    monkeypatch.setattr(pipeline, "prepare_extras", purged_meanwhile)
    monkeypatch.setattr(send_module, "prepare_extras", purged_meanwhile)
    reply = send(alice, direct, "re", reply_to=original["seq"])
    assert reply["reply"]["purged"] is True and reply["reply"]["text"] == ""
    assert "secret" not in str(reply)
    assert seqs_of(app, direct) == [reply["seq"]]
    with app.app_context():
        stored = db.session.scalar(select(Message).where(Message.conversation_id == direct, Message.seq == 2))
        assert stored.reply == {
            "seq": 1,
            "type": "txt",
            "sender": stored.reply["sender"],
            "purged": True,
            "text": "",
        }


# --- a forward racing a purge ------------------------------------------------------------------


@pytest.fixture
def raced(app, chat, make_user, befriend, login):
    """Alice's old picture in her conversation with Bob (purged at 30 days), and her conversation
    with Carol, where she forwards it."""
    owner, alice, bob, direct, alice_id, _ = chat
    carol_id = make_user("carol")
    befriend(alice_id, carol_id)
    carol = login("carol")
    target = alice.post("/api/v1/conversations", json={"user_id": carol_id}).get_json()["conversation"]["id"]
    picture = uploaded(alice, image_bytes("PNG", (12, 12)), "raced.png")
    send(alice, direct, body={"type": "img", "upload_id": picture["id"]})  # 1
    age(app, direct, [1], 40)
    set_policy(app, owner, 30)
    return alice, carol, direct, target, picture


def forward_picture(alice, direct: int, target: int):
    return alice.post(
        "/api/v1/messages/forward",
        json={
            "conversation_id": direct,
            "seqs": [1],
            "mode": "separate",
            "targets": [{"conversation_id": target, "client_msg_id": f"keep-{next(_ids):08d}"}],
        },
    )


def purge_direct(app, direct: int) -> retention.Outcome:
    with app.app_context():  # another transaction (another greenlet's or process's)
        return retention.purge_conversation(direct, utcnow() - timedelta(days=30))


def assert_refused_and_purged(app, response, target: int, picture: dict, carol) -> None:
    """The forward's target was refused with a clear error, nothing was stored there, and the
    purge deleted the picture whole."""
    assert response.status_code == 200, response.get_json()
    [result] = response.get_json()["results"]
    assert result["ok"] is False and result["error"]["code"] == "not_visible", result
    assert seqs_of(app, target) == []
    with app.app_context():
        assert db.session.get(Upload, picture["id"]) is None
        assert db.session.scalar(select(func.count()).select_from(UploadShare)) == 0
    assert fetch(carol, picture["url"]).status_code == 404


# After the hold is SQLite's case (no row locks: the check after the first write catches it); on
# PostgreSQL the hold keeps the purge waiting, which the two tests below cover.
RACE_POINTS = ["before the hold"] + (["after the hold"] if TEST_DB == "sqlite" else [])


@pytest.mark.parametrize("when", RACE_POINTS)
def test_a_forward_whose_upload_a_purge_deleted_meanwhile_is_refused(app, raced, monkeypatch, when):
    """The sources are read, then the purge commits, then the target's transaction shares: the
    copy would carry a picture that is gone, so the target is refused instead."""
    import app.chat.actions.forward as forward_module
    from app.media import services as media

    alice, carol, direct, target, picture = raced
    outcome = {}
    module, name = (
        (forward_module, "check_send_rate") if when == "before the hold" else (media, "existing_uploads")
    )
    real = getattr(module, name)

    def purged_meanwhile(*args, **kwargs):
        done = real(*args, **kwargs)
        if name == "check_send_rate" or kwargs.get("hold"):
            outcome["purge"] = purge_direct(app, direct)
        return done

    monkeypatch.setattr(module, name, purged_meanwhile)
    response = forward_picture(alice, direct, target)
    assert (outcome["purge"].messages, outcome["purge"].uploads) == (1, 1)
    assert_refused_and_purged(app, response, target, picture, carol)


@pytest.mark.postgresql
def test_a_purge_waits_for_a_forward_sharing_its_upload_and_keeps_the_upload(app, raced):
    """The forward has stored its copy and share, not committed yet; the purge of the original
    waits for it, then sees the share and keeps the picture for the copy."""
    import app.chat.actions.forward as forward_module

    alice, carol, direct, target, picture = raced
    outcome = {}

    def run_purge():
        try:
            outcome["purge"] = purge_direct(app, direct)
        except Exception as error:  # noqa: BLE001 - reported by the test below
            outcome["error"] = error

    purger = threading.Thread(target=run_purge)

    def purge_before_the_commit(context, messages):
        purger.start()
        until_waiting_on_a_lock(app, purger, outcome)  # the purge waits on the forward's locks

    with forward_module.message_forwarded.connected_to(purge_before_the_commit):
        response = forward_picture(alice, direct, target)
    purger.join(30)
    assert not purger.is_alive() and "error" not in outcome, outcome
    assert response.status_code == 200
    [result] = response.get_json()["results"]
    assert result["ok"] is True, result
    assert (outcome["purge"].messages, outcome["purge"].uploads) == (1, 0)
    assert seqs_of(app, direct) == [] and seqs_of(app, target) == [1]
    with app.app_context():
        kept = db.session.get(Upload, picture["id"])
        assert kept is not None and kept.message_id is None
        copy_id = db.session.scalar(select(Message.id).where(Message.conversation_id == target))
        assert db.session.execute(select(UploadShare.upload_id, UploadShare.message_id)).all() == [
            (picture["id"], copy_id)
        ]
    assert fetch(carol, picture["url"]).status_code == 200


@pytest.mark.postgresql
def test_a_forward_waits_for_a_purge_holding_its_upload_and_is_refused(app, raced, monkeypatch):
    """The purge has locked and deleted the picture, not committed yet; the forward (its sources
    read before) waits for it, then finds the picture gone: refused, no deadlock, no 500."""
    alice, carol, direct, target, picture = raced
    outcome = {}

    def run_forward():
        try:
            outcome["response"] = forward_picture(alice, direct, target)
        except Exception as error:  # noqa: BLE001 - reported by the test below
            outcome["error"] = error

    forwarder = threading.Thread(target=run_forward)
    real = retention._purge_quotes

    def forward_before_the_commit(*args):
        forwarder.start()
        until_waiting_on_a_lock(app, forwarder, outcome)  # the forward waits on the purge's locks
        return real(*args)

    monkeypatch.setattr(retention, "_purge_quotes", forward_before_the_commit)
    purged = purge_direct(app, direct)
    forwarder.join(30)
    assert not forwarder.is_alive() and "error" not in outcome, outcome
    assert (purged.messages, purged.uploads) == (1, 1)
    assert_refused_and_purged(app, outcome["response"], target, picture, carol)


def test_search_counts_what_a_user_may_see_from_after_the_purged_seqs(app, chat, monkeypatch):
    """Whether a search reads the user's own messages or asks the index depends on how many they
    may see: purged seqs are not among them (nor a window that ended before them)."""
    from app.groups import services as groups

    owner, alice, bob, direct, alice_id, bob_id = chat
    group = make_group(alice, "Left early", [bob_id])
    send(alice, group["conversation_id"], "before bob left")
    with app.app_context():
        groups.leave(bob_id, group["id"])
    send(alice, group["conversation_id"], "after bob left")
    for n in range(5):
        send(alice, direct, f"needle {n}")
    age(app, direct, [1, 2, 3, 4], 40)
    in_group = seqs_of(app, group["conversation_id"])
    age(app, group["conversation_id"], in_group[:-1], 40)
    set_policy(app, owner, 30)
    purge(app)
    assert seqs_of(app, group["conversation_id"]) == in_group[-1:]
    with app.app_context():
        assert search_module._visible_total({"user_id": bob_id}, direct) == 1
        assert search_module._visible_total({"user_id": bob_id}, group["conversation_id"]) == 0
        assert search_module._visible_total({"user_id": bob_id}, None) == 1
    monkeypatch.setattr(search_module, "VISIBLE_SCAN_MAX", 3)
    paths = []
    for name in ("_scan", "_indexed"):
        real = getattr(search_module, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            paths.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(search_module, name, spy)
    hits = bob.get("/api/v1/search/messages", query_string={"q": "needle"}).get_json()["hits"]
    assert [hit["message"]["seq"] for hit in hits] == [5]
    assert paths == ["_scan"]
