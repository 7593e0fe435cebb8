"""Webhooks' after-events: written in the transaction of the change (one INSERT per batch),
delivered signed from the outbox, retried with backoff, once across processes and after kill -9,
and configured in the admin console."""

from __future__ import annotations

import re
import signal
import time
from contextlib import ExitStack
from datetime import timedelta

import gevent
import pytest
import requests
from sqlalchemy import event, func, select, update

from app.chat.access import send_context
from app.chat.conversations import open_direct
from app.errors import ApiError
from app.extensions import db
from app.groups import services as groups
from app.models import AuditLog, User, utcnow
from app.models.integrations import Webhook, WebhookDelivery
from app.moderation import services as moderation
from app.social import services as social
from app.webhooks import before_send, deliver, manage, registry
from tests.chat_helpers import connect
from tests.conftest import PASSWORD, LiveServer, server_env
from tests.fake_integrator import FakeIntegrator
from tests.socket_client import Device
from tests.test_group_commit import send_together, text


@pytest.fixture
def integrator():
    fake = FakeIntegrator().start()
    yield fake
    fake.stop()


def add_hook(app, fake, events=registry.AFTER_EVENTS, **options) -> int:
    with app.app_context():
        hook = manage.create_hook(None, "backend", fake.url, list(events), secret=fake.secret, **options)
        return hook.id


def rows(app, **where) -> list[WebhookDelivery]:
    with app.app_context():
        query = select(WebhookDelivery).filter_by(**where).order_by(WebhookDelivery.id)
        found = list(db.session.scalars(query))
        db.session.expunge_all()
        return found


def make_due(app) -> None:
    """Time moves on: every pending row is due now."""
    with app.app_context():
        db.session.execute(update(WebhookDelivery).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()


# --- every event, as documented -------------------------------------------------------------


def test_every_after_event_reaches_the_integrator_signed_as_documented(app, integrator, make_user, login):
    add_hook(app, integrator)
    alice_id, bob_id = make_user("alice", is_admin=True), make_user("bob")
    with app.app_context():
        db.session.get(User, bob_id).external_id = "crm-bob"
        db.session.commit()
        request, _ = social.send_friend_request(alice_id, bob_id, "hi")
        social.respond_to_request(bob_id, request["id"], accept=True)
        conversation_id = open_direct(alice_id, bob_id)[0]["id"]
    bob = connect(app, login("bob"))
    ack = bob.send(conversation_id, "hello there")
    seq = ack["message"]["seq"]
    assert (
        bob.http.patch(
            f"/api/v1/conversations/{conversation_id}/messages/{seq}",
            json={"msg": "hello again", "version": 0},
        ).status_code
        == 200
    )
    assert (
        bob.http.post(f"/api/v1/conversations/{conversation_id}/messages/{seq}/recall", json={}).status_code
        == 200
    )
    with app.app_context():
        group = groups.create_group(alice_id, "Team", [bob_id])
        group_id, group_conversation = group.id, group.conversation_id
    group_ack = bob.send(group_conversation, "in the group")
    with app.app_context():
        groups.leave(bob_id, group_id)
        moderation.ban_user(alice_id, bob_id, "spam")  # alice administers the site

    delivered = deliver.deliver_due(app)
    assert delivered == 11
    got = {}
    for item in integrator.events():
        assert item.signed, item
        assert item.headers["X-Parley-Event"] == item.event == item.payload["event"]
        assert item.headers["X-Parley-Delivery"] == item.payload["id"]
        assert re.fullmatch(r"v1=[0-9a-f]{64}", item.headers["X-Parley-Signature"])
        assert item.payload["created_at"].endswith("Z") or "+" in item.payload["created_at"]
        got.setdefault(item.event, []).append(item.payload["data"])
    assert sorted(got) == sorted(registry.AFTER_EVENTS)
    bob_ref = {"id": bob_id, "external_id": "crm-bob", "username": "bob", "nickname": "bob"}
    registered = sorted((d["user"] for d in got["user.registered"]), key=lambda user: user["id"])
    assert registered[1] == {**bob_ref, "external_id": None}
    assert got["friend.added"] == [
        {
            "user": {
                **bob_ref,
                "id": alice_id,
                "external_id": None,
                "username": "alice",
                "nickname": "alice",
            },
            "friend": bob_ref,
        }
    ]
    direct, grouped = sorted(got["message.sent"], key=lambda data: data["message"]["id"])
    assert direct["message"] == ack["message"]
    assert direct["conversation"] == {"id": conversation_id, "kind": "direct"}
    assert direct["sender"] == bob_ref
    assert grouped["conversation"] == {"id": group_conversation, "kind": "group", "group_id": group_id}
    assert grouped["message"]["body"] == {"type": "txt", "msg": "in the group"}
    assert group_ack["message"]["id"] == grouped["message"]["id"]
    (edited,) = got["message.edited"]
    assert edited["message"]["body"]["msg"] == "hello again" and edited["message"]["edit_count"] == 1
    (recalled,) = got["message.recalled"]
    assert recalled["message"]["recalled"] is True and recalled["actor"] == bob_ref
    joined = got["group.member_joined"]
    assert {d["user"]["id"] for d in joined} == {alice_id, bob_id}
    assert all(
        d["group"] == {"id": group_id, "name": "Team", "conversation_id": group_conversation} for d in joined
    )
    assert {d["how"] for d in joined} == {"group_created"}
    (left,) = got["group.member_left"]
    assert left["user"] == bob_ref and left["how"] == "member_left"
    (banned,) = got["user.banned"]
    assert banned["user"] == bob_ref and banned["reason"] == "spam" and banned["expires_at"] is None
    assert banned["by"]["admin"]["id"] == alice_id
    # Each row is delivered once, and the hook shows how the last one went.
    assert {row.status for row in rows(app)} == {"delivered"}
    assert deliver.deliver_due(app) == 0
    with app.app_context():
        hook = db.session.scalar(select(Webhook))
        assert (hook.last_status, hook.last_status_code, hook.last_error) == ("delivered", 200, None)


def test_only_subscribed_enabled_hooks_get_rows_and_the_robot_is_no_user(app, integrator, make_user):
    add_hook(app, integrator, ["user.registered"])
    add_hook(app, integrator, ["user.registered"], enabled=False)
    add_hook(app, integrator, ["friend.added"])
    make_user("carol")
    make_user("robot", None, is_bot=True)
    (row,) = rows(app)
    assert row.event == "user.registered" and row.payload["data"]["user"]["username"] == "carol"


def test_no_row_is_written_when_the_change_rolls_back(app, integrator):
    add_hook(app, integrator)
    from app.auth import services as auth

    with app.app_context():
        auth.create_user("dave", PASSWORD)
        db.session.rollback()
        auth.create_user("erin", PASSWORD)
        db.session.commit()
    assert [row.payload["data"]["user"]["username"] for row in rows(app)] == ["erin"]


def test_a_hook_changed_here_is_seen_at_once(app, integrator, make_user):
    hook_id = add_hook(app, integrator, ["friend.added"])
    make_user("frank")
    assert rows(app) == []
    with app.app_context():
        manage.update_hook(None, hook_id, events=["user.registered"])
    make_user("gina")
    assert len(rows(app)) == 1


@pytest.fixture
def hook_reads(app):
    """Counts the reads of the hook list; each read yields while it runs, as a read on a busy
    database does, so greenlets calling at the same moment overlap."""
    reads = []

    def spy(conn, cursor, statement, parameters, context, executemany):
        if "WHERE webhooks.enabled" in statement:  # registry._LOAD
            reads.append(statement)
            gevent.sleep(0.05)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", spy)
    yield reads
    event.remove(engine, "before_cursor_execute", spy)


def hooks_seen_together(app, callers: int = 20) -> list[tuple]:
    def one():
        with app.app_context():
            return tuple(hook.id for hook in registry.enabled_hooks())

    jobs = [gevent.spawn(one) for _ in range(callers)]
    gevent.joinall(jobs, raise_error=True)
    return [job.value for job in jobs]


def test_an_expired_hook_list_is_read_once_while_the_others_use_the_old_one(
    app, integrator, hook_reads, monkeypatch
):
    monkeypatch.setitem(app.config, "WEBHOOK_CACHE_SECONDS", 5)
    hook_id = add_hook(app, integrator, ["user.registered"])
    with app.app_context():
        registry.enabled_hooks()
    monkeypatch.setattr(registry, "_cache", (time.monotonic() - 60, ()))  # expired, and out of date
    hook_reads.clear()
    seen = hooks_seen_together(app)
    assert len(hook_reads) == 1
    assert seen[0] == (hook_id,) and set(seen[1:]) == {()}  # the reader gets the new list
    assert hooks_seen_together(app) == [(hook_id,)] * 20 and len(hook_reads) == 1  # kept


def test_with_no_list_in_memory_one_caller_reads_it_and_the_others_wait_for_it(
    app, integrator, hook_reads, monkeypatch
):
    monkeypatch.setitem(app.config, "WEBHOOK_CACHE_SECONDS", 5)
    hook_id = add_hook(app, integrator, ["user.registered"])  # drops the copy
    hook_reads.clear()
    assert hooks_seen_together(app) == [(hook_id,)] * 20
    assert len(hook_reads) == 1


def test_a_read_that_began_before_a_change_here_is_not_kept(app, integrator, hook_reads, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOK_CACHE_SECONDS", 5)
    hook_id = add_hook(app, integrator, ["user.registered"])
    monkeypatch.setattr(registry, "_cache", (time.monotonic() - 60, ()))
    hook_reads.clear()

    def read():
        with app.app_context():
            return registry.enabled_hooks()

    with app.app_context():
        reader = gevent.spawn(read)
        gevent.sleep(0.01)  # the reader is reading
        assert len(hook_reads) == 1
        manage.update_hook(None, hook_id, events=["friend.added"])
        reader.join()
        assert [hook.events for hook in registry.enabled_hooks()] == [frozenset({"friend.added"})]
    assert len(hook_reads) == 2


def test_a_recalled_notice_is_an_event_without_a_sender_as_documented(
    app, client, integrator, make_user, api_key
):
    add_hook(app, integrator, ["message.recalled"])
    user_id = make_user("nora")
    headers = api_key("messages")
    sent = client.post(
        "/api/server/v1/notices", json={"text": "Tonight", "user_ids": [user_id]}, headers=headers
    )
    (notice,) = sent.get_json()["notices"]
    seq = notice["message"]["seq"]
    url = f"/api/server/v1/conversations/{notice['conversation_id']}/messages/{seq}/recall"
    assert client.post(url, json={}, headers=headers).status_code == 200
    (row,) = rows(app)
    data = row.payload["data"]
    assert (data["sender"], data["actor"]) == (None, None)
    assert data["conversation"] == {"id": notice["conversation_id"], "kind": "notice"}
    message = data["message"]
    assert (message["sender"], message["type"], message["recalled"], message["seq"]) == (
        None,
        "system",
        True,
        seq,
    )
    assert message["body"] == {
        "type": "system",
        "recalled": True,
        "by": "admin",
        "by_id": None,
        "text": "Removed by an administrator",
    }


# --- the send path stays cheap --------------------------------------------------------------


@pytest.fixture
def people(app, make_user, befriend):
    alice = make_user("alice")
    friends = [make_user(f"friend{i}") for i in range(4)]
    conversations = []
    for friend in friends:
        befriend(alice, friend)
        with app.app_context():
            conversations.append(open_direct(alice, friend)[0]["id"])
    return alice, friends, conversations


def outbox_statements(seen: list[str]) -> list[str]:
    return [s for s in seen if "webhook" in s.lower()]


def test_a_send_without_hooks_runs_no_webhook_statement(app, people, integrator, count_queries):
    alice, _, conversations = people
    add_hook(app, integrator, ["user.registered"])  # hooks exist, none for message.sent
    with app.app_context():
        registry.enabled_hooks()  # the list is in memory, as it is after the first send
    with count_queries() as seen:
        send_together(app, [(alice, c, f"n-{c}", text("n")) for c in conversations])
    assert outbox_statements(seen) == []


def test_a_batch_of_sends_writes_its_rows_in_one_insert(app, people, integrator, count_queries):
    alice, _, conversations = people
    add_hook(app, integrator, ["message.sent"])
    add_hook(app, integrator, ["message.sent", "user.registered"])
    with count_queries() as seen:
        send_together(app, [(alice, c, f"b-{c}", text("b")) for c in conversations])
    inserts = [s for s in outbox_statements(seen) if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 1
    stored = rows(app)
    assert len(stored) == 2 * len(conversations)
    assert len({row.event_id for row in stored}) == len(conversations)  # one id per event, shared


# --- retries ----------------------------------------------------------------------------------


def test_a_delivery_is_retried_with_backoff_until_the_integrator_is_back(app, integrator, make_user):
    add_hook(app, integrator, ["user.registered"])
    integrator.down()
    make_user("hana")
    before = utcnow()
    assert deliver.deliver_due(app) == 0
    (row,) = rows(app)
    assert (row.status, row.attempts, row.lease_until) == ("pending", 1, None)
    assert row.last_error and row.last_status_code is None
    assert before + timedelta(seconds=1.9) <= row.next_attempt_at <= utcnow() + timedelta(seconds=2.5)
    assert deliver.deliver_due(app) == 0  # not due yet: nothing is sent
    make_due(app)
    assert deliver.deliver_due(app) == 0
    (row,) = rows(app)
    assert row.attempts == 2 and row.next_attempt_at >= utcnow() + timedelta(seconds=3)
    with app.app_context():
        hook = db.session.scalar(select(Webhook))
        assert hook.last_status == "retrying" and hook.last_error

    integrator.up()
    make_due(app)
    assert deliver.deliver_due(app) == 1
    (row,) = rows(app)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 3, 200)
    (received,) = integrator.events()
    assert received.payload["id"] == row.event_id


def test_an_error_answer_is_retried_and_fails_after_the_retry_hours(app, integrator, make_user):
    add_hook(app, integrator, ["user.registered"])
    integrator.status = 500
    make_user("ivan")
    assert deliver.deliver_due(app) == 0
    (row,) = rows(app)
    assert (row.status, row.last_status_code, row.last_error) == ("pending", 500, "HTTP 500")
    with app.app_context():
        db.session.execute(update(WebhookDelivery).values(created_at=utcnow() - timedelta(hours=24)))
        db.session.commit()
    make_due(app)
    assert deliver.deliver_due(app) == 0
    (row,) = rows(app)
    assert row.status == "failed" and row.attempts == 2
    make_due(app)
    assert deliver.deliver_due(app) == 0 and len(integrator.received) == 2  # failed rows stay put


def test_a_claimed_row_is_not_claimed_again_until_its_lease_ends(app, integrator, make_user):
    add_hook(app, integrator, ["user.registered"])
    make_user("jade")
    (first,) = deliver.claim(app, 10)
    assert deliver.claim(app, 10) == []
    with app.app_context():
        db.session.execute(update(WebhookDelivery).values(lease_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    (again,) = deliver.claim(app, 10)
    assert again.id == first.id and again.attempts == 2


def test_a_process_whose_lease_ran_out_records_nothing_over_the_one_that_took_over(
    app, integrator, make_user
):
    hook_id = add_hook(app, integrator, ["user.registered"])
    make_user("jon")
    (late,) = deliver.claim(app, 10)  # this process stalls past its lease...
    later = late.lease_until + timedelta(seconds=1)
    (took_over,) = deliver.claim(app, 10, now=later)  # ...and another takes the row over
    hook = deliver._hooks_of(app, {hook_id})[hook_id]
    assert deliver.deliver_one(app, hook, took_over) is True
    integrator.down()  # the stalled process's attempt fails: it must not mark the row pending
    assert deliver.deliver_one(app, hook, late) is False
    integrator.up()
    (row,) = rows(app)
    assert (row.status, row.last_status_code, row.last_error) == ("delivered", 200, None)
    with app.app_context():
        assert db.session.get(Webhook, hook_id).last_status == "delivered"
    make_due(app)
    assert deliver.deliver_due(app) == 0
    assert len(integrator.events("user.registered")) == 1  # no third send


def test_an_idle_poll_writes_nothing(app, integrator, make_user, count_queries):
    with count_queries() as idle:
        assert deliver.claim(app, 10) == []
    assert idle and not [s for s in idle if s.lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE"))]
    add_hook(app, integrator, ["user.registered"])
    make_user("kai")
    with count_queries() as busy:
        (row,) = deliver.claim(app, 10)
    assert [s for s in busy if s.lstrip().upper().startswith("UPDATE")]
    assert deliver.claim(app, 10) == []  # leased: not due


def test_old_delivered_and_failed_rows_are_purged_and_others_kept(app, integrator, make_user):
    add_hook(app, integrator, ["user.registered"])
    for name in ("kim", "lee", "max"):
        make_user(name)
    deliver.deliver_due(app)
    for name in ("ned", "oli", "pam", "quy"):
        make_user(name)  # pending
    old = utcnow() - timedelta(days=8)
    with app.app_context():
        ids = list(db.session.scalars(select(WebhookDelivery.id).order_by(WebhookDelivery.id)))
        db.session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id.in_(ids[:2])).values(delivered_at=old)
        )
        db.session.execute(update(WebhookDelivery).where(WebhookDelivery.id == ids[3]).values(created_at=old))
        # Failed: one whose last attempt is old, one that failed lately (an old event retried
        # from the console, say).
        failed = update(WebhookDelivery).values(status="failed", created_at=old)
        db.session.execute(failed.where(WebhookDelivery.id == ids[4]).values(next_attempt_at=old))
        db.session.execute(failed.where(WebhookDelivery.id == ids[5]).values(next_attempt_at=utcnow()))
        db.session.commit()
    assert deliver.purge(app) == 3
    assert [row.id for row in rows(app)] == [ids[2], ids[3], ids[5], ids[6]]


# --- URLs: what is accepted, what is shown -------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://crm.example.com/",
        "https://user:pass@crm.example.com/hook",
        "https://token@crm.example.com/",
        "/x",
    ],
)
def test_a_url_that_is_not_plain_http_is_refused_and_nothing_saved(app, url):
    with app.app_context():
        with pytest.raises(ApiError) as refused:
            manage.create_hook(None, "crm", url, ["user.registered"])
        assert refused.value.code == "invalid_webhook" and "url" in refused.value.fields
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(Webhook)) == 0
        hook = manage.create_hook(None, "crm", "https://crm.example.com/hook", ["user.registered"])
        with pytest.raises(ApiError):
            manage.update_hook(None, hook.id, url=url)
        db.session.rollback()
        assert db.session.get(Webhook, hook.id).url == "https://crm.example.com/hook"


def test_a_token_in_the_url_is_not_logged_audited_or_shown(
    app, admin, integrator, make_user, befriend, caplog
):
    token = "s3cret-token-42"
    url = f"{integrator.url}?token={token}"
    with app.app_context():
        hook_id = manage.create_hook(None, "crm", url, ["user.registered", "message.before_send"]).id
        manage.update_hook(None, hook_id, url=url + "&v=2")
        assert db.session.get(Webhook, hook_id).url == url + "&v=2"  # stored as given
        details = [row.details for row in db.session.scalars(select(AuditLog).order_by(AuditLog.id))]
    assert [item["url"] for item in details] == [integrator.url, integrator.url]
    integrator.down()
    alice, bob = make_user("alice2"), make_user("bob")
    befriend(alice, bob)
    with caplog.at_level("INFO"):
        assert deliver.deliver_due(app) == 0
        with app.app_context():
            conversation_id = open_direct(alice, bob)[0]["id"]
            context = send_context(alice, conversation_id)
            body = {"type": "txt", "msg": "hi"}
            assert before_send.check(context, alice, conversation_id, body) == body  # fails open
    with app.app_context():
        errors = [row.last_error for row in rows(app)] + [db.session.get(Webhook, hook_id).last_error]
    assert all(errors) and "127.0.0.1" in errors[0]
    assert "before-send webhook" in caplog.text
    listing = admin.get("/admin/webhooks/").get_data(as_text=True)
    log = admin.get("/admin/webhookdelivery/").get_data(as_text=True)
    assert "127.0.0.1" in listing and "127.0.0.1" in log
    for shown in (*errors, caplog.text, listing, log, str(details)):
        assert token not in shown


# --- the console --------------------------------------------------------------------------------


def csrf_of(page) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True))
    assert match
    return match.group(1)


@pytest.fixture
def admin(app, make_user, login):
    make_user("root", is_admin=True)
    make_user("alice")
    return login("root")


def test_the_console_creates_a_hook_with_a_generated_secret_and_audits_it(app, admin, login):
    form = admin.get("/admin/webhooks/new")
    assert form.status_code == 200
    data = {
        "csrf_token": csrf_of(form),
        "name": "CRM",
        "url": "https://crm.example.com/parley",
        "secret": "",
        "events": ["message.sent", "message.before_send"],
        "enabled": "y",
        "timeout_ms": "1500",
        "fail_open": "",
    }
    created = admin.post("/admin/webhooks/new", data=data, follow_redirects=True)
    assert created.status_code == 200
    with app.app_context():
        hook = db.session.scalar(select(Webhook))
        assert (hook.name, hook.events, hook.timeout_ms, hook.fail_open) == (
            "CRM",
            ["message.before_send", "message.sent"],
            1500,
            False,
        )
        assert len(hook.secret) >= 32 and hook.secret in created.get_data(as_text=True)
        assert db.session.scalar(select(AuditLog.action)) == "webhook_create"
        hook_id = hook.id
    listing = admin.get("/admin/webhooks/").get_data(as_text=True)
    assert "crm.example.com" in listing and "message.sent" in listing
    # A bad URL is refused and changes nothing.
    form = admin.get(f"/admin/webhooks/{hook_id}/edit")
    bad = admin.post(
        f"/admin/webhooks/{hook_id}/edit",
        data={**data, "csrf_token": csrf_of(form), "url": "ftp://crm.example.com/"},
        follow_redirects=True,
    )
    assert "invalid_webhook" in bad.get_data(as_text=True) or "Nothing was" in bad.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Webhook, hook_id).url == "https://crm.example.com/parley"
    assert login("alice").get("/admin/webhooks/").status_code == 403


def test_the_console_lists_deliveries_and_retries_a_failed_one(app, admin, integrator, make_user):
    add_hook(app, integrator, ["user.registered"])
    integrator.status = 500
    make_user("olga")
    deliver.deliver_due(app)
    with app.app_context():
        db.session.execute(update(WebhookDelivery).values(status="failed"))
        db.session.commit()
    (row,) = rows(app)
    page = admin.get("/admin/webhookdelivery/?flt0_0=failed")
    assert page.status_code == 200 and "user.registered" in page.get_data(as_text=True)
    integrator.status = 200
    retried = admin.post(
        f"/admin/webhookdelivery/{row.id}/retry", data={"csrf_token": csrf_of(page)}, follow_redirects=True
    )
    assert retried.status_code == 200
    (row,) = rows(app)
    assert row.status == "pending"
    assert deliver.deliver_due(app) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(AuditLog.action == "webhook_retry")) == 1


def test_retry_now_is_refused_while_a_worker_is_sending_the_row(app, admin, integrator, make_user):
    hook_id = add_hook(app, integrator, ["user.registered"])
    make_user("pete")
    (sending,) = deliver.claim(app, 10)  # a worker is sending it
    page = admin.get("/admin/webhookdelivery/")
    refused = admin.post(
        f"/admin/webhookdelivery/{sending.id}/retry",
        data={"csrf_token": csrf_of(page)},
        follow_redirects=True,
    )
    assert "delivery_in_progress" in refused.get_data(as_text=True)
    (row,) = rows(app)
    assert (row.status, row.lease_until) == ("pending", sending.lease_until)  # the claim stands
    assert deliver.claim(app, 10) == []  # no second worker takes it
    hook = deliver._hooks_of(app, {hook_id})[hook_id]
    assert deliver.deliver_one(app, hook, sending) is True
    make_due(app)
    assert deliver.deliver_due(app) == 0 and len(integrator.events("user.registered")) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(AuditLog.action == "webhook_retry")) == 0
        with pytest.raises(ApiError) as delivered:
            manage.retry_delivery(None, sending.id)
        assert delivered.value.code == "already_delivered"


def test_retry_now_takes_over_a_row_whose_lease_ran_out(app, integrator, make_user):
    add_hook(app, integrator, ["user.registered"])
    make_user("rosa")
    (stalled,) = deliver.claim(app, 10)  # its process died mid-delivery
    with app.app_context():
        db.session.execute(update(WebhookDelivery).values(lease_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        manage.retry_delivery(None, stalled.id)
    (row,) = rows(app)
    assert (row.status, row.lease_until) == ("pending", None)
    assert deliver.deliver_due(app) == 1


# --- live servers: the real worker ----------------------------------------------------------


def live_env(database_url, instance_path) -> dict[str, str]:
    return server_env(database_url, instance_path, WEBHOOK_CACHE_SECONDS="0", WEBHOOK_DELIVERY="true")


def registered_ids(fake: FakeIntegrator) -> list[str]:
    return [item.delivery for item in fake.events("user.registered")]


def register(base_url: str, names: list[str]) -> None:
    with requests.Session() as session:
        for name in names:
            response = session.post(
                f"{base_url}/api/v1/auth/register", json={"username": name, "password": PASSWORD}, timeout=10
            )
            assert response.status_code in (200, 201), response.text


def test_events_pending_at_a_kill_9_are_delivered_once_by_the_next_server(
    app, integrator, database_url, instance_path, tmp_path
):
    add_hook(app, integrator, ["user.registered"])
    integrator.down()
    env = live_env(database_url, instance_path)
    first = LiveServer(env, tmp_path / "first.log").start()
    try:
        register(first.url, [f"kill{i}" for i in range(5)])
        deadline = time.monotonic() + 10
        while not all(row.attempts for row in rows(app)) and time.monotonic() < deadline:
            time.sleep(0.1)  # the worker tried (the integrator is down)
        assert all(row.attempts >= 1 and row.status == "pending" for row in rows(app))
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
    finally:
        first.stop()
    integrator.up()
    make_due(app)
    with ExitStack() as stack:
        second = LiveServer(env, tmp_path / "second.log").start()
        stack.callback(second.stop)
        integrator.wait_for(5, "user.registered")
        time.sleep(1.5)  # a second delivery of any of them would have come by now
    ids = registered_ids(integrator)
    assert len(ids) == len(set(ids)) == 5
    assert {row.status for row in rows(app)} == {"delivered"}


def test_two_processes_deliver_each_event_once(app, integrator, database_url, instance_path, tmp_path):
    add_hook(app, integrator, ["user.registered"])
    env = live_env(database_url, instance_path)
    with ExitStack() as stack:
        servers = [LiveServer(env, tmp_path / f"p{i}.log") for i in range(2)]
        for server in servers:
            stack.callback(server.stop)
            server.start()
        integrator.down()
        for i in range(10):
            register(servers[i % 2].url, [f"two{i}a", f"two{i}b"])
        deadline = time.monotonic() + 10
        while not all(row.attempts for row in rows(app)) and time.monotonic() < deadline:
            time.sleep(0.1)
        # Every row is due at once for both processes' workers, which poll for them together.
        integrator.up()
        make_due(app)
        integrator.wait_for(20, "user.registered")
        time.sleep(1.5)
    ids = registered_ids(integrator)
    assert len(ids) == len(set(ids)) == 20


def test_the_worker_delivers_a_live_message_at_once(
    app, integrator, database_url, instance_path, tmp_path, make_user, befriend
):
    add_hook(app, integrator, ["message.sent"])
    alice, bob = make_user("alice"), make_user("bob")
    befriend(alice, bob)
    with app.app_context():
        conversation_id = open_direct(alice, bob)[0]["id"]
    with ExitStack() as stack:
        server = LiveServer(live_env(database_url, instance_path), tmp_path / "live.log").start()
        stack.callback(server.stop)
        device = stack.enter_context(Device(server.url, "alice", PASSWORD))
        ack = device.send(conversation_id, "to the backend")
        (item,) = integrator.wait_for(1, "message.sent")
    assert item.signed and item.payload["data"]["message"]["id"] == ack["message"]["id"]


def test_an_event_queued_in_a_savepoint_that_rolls_back_is_dropped(app, integrator):
    add_hook(app, integrator, ["user.registered"])
    from app.auth import services as auth

    with app.app_context():
        auth.create_user("kept", PASSWORD)
        savepoint = db.session.begin_nested()
        auth.create_user("refused", PASSWORD)
        savepoint.rollback()
        db.session.commit()
    assert [row.payload["data"]["user"]["username"] for row in rows(app)] == ["kept"]


def test_a_process_with_delivery_off_leaves_the_outbox_to_others(
    app, integrator, database_url, instance_path, tmp_path
):
    add_hook(app, integrator, ["user.registered"])
    env = {**live_env(database_url, instance_path), "WEBHOOK_DELIVERY": "false"}
    with ExitStack() as stack:
        server = LiveServer(env, tmp_path / "quiet.log").start()
        stack.callback(server.stop)
        register(server.url, ["quiet1", "quiet2"])
        time.sleep(2.5)  # more than two polls of a worker, had it one
    assert [(row.status, row.attempts) for row in rows(app)] == [("pending", 0), ("pending", 0)]
    assert integrator.events("user.registered") == []
