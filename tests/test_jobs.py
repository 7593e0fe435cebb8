"""Work that runs once across processes (app/jobs): queued jobs claimed with a lease, run once when
workers race, taken over after a dead worker's lease, retried with backoff and given up; periodic
jobs run once per interval and taken over too; upload cleanup and ended mutes as periodic jobs;
the robot's answer as a job, answered once even when its process is killed mid-answer (a real
two-process cluster behind nginx).

Most tests drive the claims with an explicit clock (`now`), so nothing waits for a lease to run
out; the cluster test waits for a real (short) lease.
"""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from datetime import timedelta

import gevent
import pytest
from sqlalchemy import func, select

from app import realtime
from app.extensions import db
from app.groups import roles as group_roles
from app.groups.services import create_group
from app.jobs import periodic, queue, schedule
from app.models import GroupMember, Message, Upload, User, utcnow
from app.models.jobs import Job, JobSchedule
from app.moderation import services as moderation
from tests import fake_unit
from tests.chat_helpers import connect
from tests.cluster import Cluster
from tests.conftest import server_env
from tests.fake_unit import FakeUnit
from tests.test_media import _age, image_bytes, uploaded

assert periodic  # registers the periodic jobs

# --- test kinds ----------------------------------------------------------------------------------

RUNS: list[tuple[int, str]] = []
_runs_lock = threading.Lock()


@queue.kind("test.count", timeout=lambda config: 2)
def _count(payload: dict) -> None:
    time.sleep(0.002)  # long enough for the other worker to try for the same row meanwhile
    with _runs_lock:
        RUNS.append((payload["n"], threading.current_thread().name))


@queue.kind("test.fail")
def _fail(payload: dict) -> None:
    raise RuntimeError(f"broken {payload['n']}")


@queue.kind("test.slow", timeout=lambda config: 0.2)
def _slow(payload: dict) -> None:
    try:
        gevent.sleep(5)
    except Exception:  # a handler's own catch-all does not swallow the time limit
        RUNS.append((-1, "caught"))


TICKS: list[tuple] = []


@schedule.every("test.tick", interval=lambda config: config.get("TEST_TICK_SECONDS", 0), timeout=lambda c: 5)
def _tick(since, now) -> None:
    TICKS.append((since, now))


@pytest.fixture(autouse=True)
def _fresh(app, monkeypatch):
    RUNS.clear()
    TICKS.clear()
    monkeypatch.setitem(app.config, "JOB_LEASE_MARGIN_SECONDS", 1)
    yield


def job_rows(app) -> list[Job]:
    with app.app_context():
        rows = list(db.session.scalars(select(Job).order_by(Job.id)))
        db.session.expunge_all()
        return rows


def queue_later(app, kind: str, count: int = 1, at=None) -> list[int]:
    """Queue `count` jobs due at `at` (in the future: no process starts them by itself)."""
    at = at or utcnow() + timedelta(hours=1)
    with app.app_context():
        ids = [queue.enqueue(kind, {"n": n}, run_after=at) for n in range(count)]
        db.session.commit()
    return ids


def at_once(work, apps: dict[str, object]) -> dict[str, object]:
    """`work(application)` for each of `apps` at the same time, each in a thread named after it
    (a process of its own, as far as the database can tell); what each returned."""
    results: dict[str, object] = {}

    def run(name: str, application) -> None:
        results[name] = work(application)

    threads = [threading.Thread(target=run, args=item, name=item[0]) for item in apps.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


# --- queued jobs ---------------------------------------------------------------------------------


def test_a_job_runs_once_its_transaction_commits_and_never_if_it_rolls_back(app):
    with app.app_context():
        queue.enqueue("test.count", {"n": 1})
        db.session.rollback()
        queue.enqueue("test.count", {"n": 2})
        assert RUNS == []
        db.session.commit()
    deadline = time.monotonic() + 5
    while not RUNS:
        assert time.monotonic() < deadline, "the committed job did not run"
        gevent.sleep(0.01)
    assert [n for n, _ in RUNS] == [2]
    gevent.sleep(0.05)
    assert job_rows(app) == []


def test_queueing_an_unknown_kind_is_refused_and_writes_nothing(app):
    with app.app_context():
        with pytest.raises(ValueError, match="unknown job kind"):
            queue.enqueue("no.such.kind", {})
        db.session.commit()
    assert job_rows(app) == []


def test_two_workers_racing_run_each_job_once(app, make_app):
    other = make_app()
    ids = queue_later(app, "test.count", 30)
    later = utcnow() + timedelta(hours=2)
    outcomes = at_once(
        lambda application: queue.run_due(application, limit=2, now=later), {"a": app, "b": other}
    )
    assert sorted(n for n, _ in RUNS) == list(range(30))  # each once
    assert outcomes["a"] + outcomes["b"] == ["done"] * len(ids)
    assert job_rows(app) == []


def test_a_job_held_by_a_dead_worker_is_run_by_another_after_its_lease(app, make_app):
    other = make_app()
    [job_id] = queue_later(app, "test.count")
    now = utcnow() + timedelta(hours=2)
    [held] = queue.claim(app, 10, now=now)  # and then this worker "dies": it never finishes
    assert held.id == job_id and held.attempts == 1
    # timeout 2 s + margin 1 s
    assert held.lease_until == now + timedelta(seconds=3)
    assert queue.claim(other, 10, now=now + timedelta(seconds=2)) == []
    [taken] = queue.claim(other, 10, now=now + timedelta(seconds=4))
    assert taken.id == job_id and taken.attempts == 2
    assert queue.execute(other, taken) == "done"
    assert [n for n, _ in RUNS] == [0]
    # The first worker coming back to life records nothing over the one that took it over.
    assert queue.finish(app, held, "RuntimeError: late") == "taken over"
    assert job_rows(app) == []


def test_a_job_whose_process_died_right_after_the_commit_is_taken_over(app, make_app):
    other = make_app()
    start = utcnow()
    with app.app_context():
        queue.enqueue("test.count", {"n": 7})
        db.session.info.pop(realtime.PENDING)  # the process dies before it can start the job
        db.session.commit()
    [row] = job_rows(app)
    assert row.attempts == 1 and row.lease_until > start  # queued already held by its process
    assert queue.run_due(other, now=utcnow()) == []
    assert queue.run_due(other, now=row.lease_until + timedelta(seconds=1)) == ["done"]
    assert [n for n, _ in RUNS] == [7]


def test_failures_back_off_and_give_up_after_the_last_attempt(app, monkeypatch, caplog):
    monkeypatch.setitem(app.config, "JOB_MAX_ATTEMPTS", 3)
    [job_id] = queue_later(app, "test.fail")
    now = utcnow() + timedelta(hours=2)
    assert queue.run_due(app, now=now) == ["retry"]
    [row] = job_rows(app)
    assert row.attempts == 1 and row.lease_until is None and row.last_error == "RuntimeError: broken 0"
    assert now + timedelta(seconds=2) <= row.run_after <= now + timedelta(seconds=2.4)
    assert queue.run_due(app, now=now + timedelta(seconds=1)) == []  # backing off
    now = row.run_after
    assert queue.run_due(app, now=now) == ["retry"]
    [row] = job_rows(app)
    assert row.attempts == 2
    assert now + timedelta(seconds=4) <= row.run_after <= now + timedelta(seconds=4.8)
    with caplog.at_level("ERROR", logger="app.jobs.queue"):
        assert queue.run_due(app, now=row.run_after) == ["gave up"]
    assert job_rows(app) == []
    [record] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert f"job {job_id} (test.fail) gave up after 3 attempts: RuntimeError: broken 0" in record.getMessage()


def test_a_run_past_its_time_limit_is_stopped_and_tried_again(app):
    queue_later(app, "test.slow")
    started = time.monotonic()
    assert queue.run_due(app, now=utcnow() + timedelta(hours=2)) == ["retry"]
    assert time.monotonic() - started < 2
    [row] = job_rows(app)
    assert row.last_error == "JobTimedOut: no result within 0.2 s"
    assert RUNS == []  # the handler's `except Exception` did not catch it


# --- periodic jobs -------------------------------------------------------------------------------


@pytest.fixture
def other(app, make_app, monkeypatch):
    """A second process; in both, the test's periodic job runs every minute."""
    monkeypatch.setitem(app.config, "TEST_TICK_SECONDS", 60)
    application = make_app(JOB_LEASE_MARGIN_SECONDS="1")
    application.config["TEST_TICK_SECONDS"] = 60
    return application


def test_a_periodic_job_runs_once_per_interval_across_two_claimers(app, other):
    now = utcnow()
    assert "test.tick" in schedule.due(app, now)  # its row is made, due at once
    results = at_once(
        lambda application: schedule.run_due(application, now=now + timedelta(seconds=1)),
        {"a": app, "b": other},
    )
    assert (results["a"] + results["b"]).count("test.tick") == 1
    first = now + timedelta(seconds=1)
    assert [(first - timedelta(seconds=60), first)] == TICKS  # the first run covers one interval
    assert "test.tick" not in schedule.run_due(other, now=first + timedelta(seconds=59))
    second = first + timedelta(seconds=60)
    assert "test.tick" in schedule.run_due(other, now=second)
    assert TICKS[1] == (first, second)  # each run covers the time since the last one
    with app.app_context():
        row = db.session.get(JobSchedule, "test.tick")
        assert row.last_run_at == second and row.next_run_at == second + timedelta(seconds=60)
        assert row.lease_until is None


def test_a_periodic_job_whose_claimer_died_is_taken_over_after_the_lease(app, other):
    now = utcnow()
    schedule.due(app, now)
    dead = schedule.claim(app, "test.tick", now=now)  # claimed, then the claimer dies
    assert dead is not None and dead.lease_until == now + timedelta(seconds=6)
    assert schedule.claim(other, "test.tick", now=now + timedelta(seconds=5)) is None
    assert "test.tick" not in schedule.run_due(other, now=now + timedelta(seconds=5))
    assert "test.tick" in schedule.run_due(other, now=now + timedelta(seconds=7))
    assert len(TICKS) == 1
    # The first claimer coming back records nothing (its run's writes roll back).
    assert schedule.run(app, dead) == "taken over"
    with app.app_context():
        assert db.session.get(JobSchedule, "test.tick").last_run_at == now + timedelta(seconds=7)


def test_a_failing_periodic_job_keeps_its_error_and_its_window(app, monkeypatch):
    monkeypatch.setitem(app.config, "TEST_TICK_SECONDS", 60)
    now = utcnow()
    schedule.due(app, now)
    monkeypatch.setitem(
        schedule.PERIODIC, "test.tick", schedule.Periodic("test.tick", _broken, lambda c: 60, lambda c: 5)
    )
    assert schedule.run(app, schedule.claim(app, "test.tick", now=now)) == "failed"
    with app.app_context():
        row = db.session.get(JobSchedule, "test.tick")
        assert row.last_error == "RuntimeError: disk full" and row.last_run_at is None
        assert row.lease_until is None and row.next_run_at == now + timedelta(seconds=60)


def _broken(since, now) -> None:
    raise RuntimeError("disk full")


# --- upload cleanup -----------------------------------------------------------------------------


def test_upload_cleanup_runs_from_its_schedule(app, make_user, login, monkeypatch):
    make_user("alice")
    alice = login("alice")
    old = uploaded(alice, image_bytes("PNG", (10, 10)), "old.png")
    new = uploaded(alice, image_bytes("PNG", (10, 10)), "new.png")
    _age(app, old["id"], 25)
    now = utcnow()
    assert "uploads.cleanup" in schedule.run_due(app, now=now)
    with app.app_context():
        assert set(db.session.scalars(select(Upload.id))) == {new["id"]}
        assert db.session.get(JobSchedule, "uploads.cleanup").next_run_at == now + timedelta(minutes=60)
    monkeypatch.setitem(app.config, "UPLOAD_CLEANUP_INTERVAL_MINUTES", 0)  # off: the command only
    assert "uploads.cleanup" not in schedule.run_due(app, now=now + timedelta(hours=2))


# --- ended mutes --------------------------------------------------------------------------------


@pytest.fixture
def team(app, make_user, login, befriend):
    owner_id, member_id = make_user("olga"), make_user("mia")
    befriend(owner_id, member_id)
    owner, member = connect(app, login("olga")), connect(app, login("mia"))
    with app.app_context():
        group = create_group(owner_id, "Team", [member_id])
        ids = group.id, group.conversation_id
    return owner, member, ids


def mute_checks(app, at) -> list[str]:
    """Run the due periodic jobs at `at`; the mutes check must be among them."""
    ran = schedule.run_due(app, now=at)
    assert "mutes.ended" in ran
    return ran


def test_an_ended_member_mute_is_told_once_and_cleared(app, team):
    owner, member, (group_id, conversation_id) = team
    with app.app_context():
        group_roles.mute_member(owner.user_id, group_id, member.user_id, 1)
        until = db.session.get(GroupMember, (group_id, member.user_id)).muted_until
    mute_checks(app, until - timedelta(seconds=1))  # not yet
    for device in (owner, member):
        device.received()
    mute_checks(app, until + timedelta(seconds=30))
    for device in (owner, member):
        [told] = device.received("message:new")
        assert told["conversation_id"] == conversation_id
        assert told["body"]["event"] == "member_muted" and told["body"]["user_ids"] == [member.user_id]
        assert told["body"]["text"] == "The mute of mia has ended"
    with app.app_context():
        assert db.session.get(GroupMember, (group_id, member.user_id)).muted_until is None
    mute_checks(app, until + timedelta(seconds=61))
    assert owner.received("message:new") == member.received("message:new") == []


def test_a_member_mute_lifted_or_renewed_before_its_end_is_not_told(app, team):
    owner, member, (group_id, _) = team
    with app.app_context():
        group_roles.mute_member(owner.user_id, group_id, member.user_id, 1)
        group_roles.mute_member(owner.user_id, group_id, member.user_id, 10)  # renewed
        until = db.session.get(GroupMember, (group_id, member.user_id)).muted_until
    owner.received()
    mute_checks(app, until - timedelta(minutes=5))
    assert owner.received("message:new") == []
    with app.app_context():
        assert db.session.get(GroupMember, (group_id, member.user_id)).muted_until == until


def test_a_member_mute_that_ended_before_the_window_is_cleared_untold(app, team):
    owner, member, (group_id, _) = team
    with app.app_context():
        group_roles.mute_member(owner.user_id, group_id, member.user_id, 1)
        until = db.session.get(GroupMember, (group_id, member.user_id)).muted_until
    owner.received()
    mute_checks(app, until + timedelta(minutes=5))  # the first run covers the last 30 s only
    assert owner.received("message:new") == []
    with app.app_context():
        assert db.session.get(GroupMember, (group_id, member.user_id)).muted_until is None


def test_an_ended_site_mute_is_told_once(app, make_user, login):
    admin_id, user_id, other_id = make_user("root", is_admin=True), make_user("sam"), make_user("tia")
    sam, tia = connect(app, login("sam")), connect(app, login("tia"))
    with app.app_context():
        moderation.mute_user(admin_id, user_id, "spam", 1)
        moderation.mute_user(admin_id, other_id, "spam", 1)
        moderation.unmute(admin_id, other_id)  # lifted by hand: told then, not again
        [until] = [m.expires_at for m in moderation.active_sanctions(user_id, "mute")]
    sam.received()
    tia.received()
    mute_checks(app, until + timedelta(seconds=10))
    assert sam.received("account:sanction") == [{"kind": "mute", "active": False, "expires_at": None}]
    assert tia.received("account:sanction") == []
    mute_checks(app, until + timedelta(seconds=41))
    assert sam.received("account:sanction") == []


def test_a_site_mute_replaced_by_a_longer_one_is_not_told_as_ended(app, make_user, login):
    admin_id, user_id = make_user("root", is_admin=True), make_user("sam")
    sam = connect(app, login("sam"))
    with app.app_context():
        moderation.mute_user(admin_id, user_id, "spam", 1)
        [first] = moderation.active_sanctions(user_id, "mute")
        until = first.expires_at
        moderation.mute_user(admin_id, user_id, "again", None)  # until lifted
    sam.received()
    mute_checks(app, until + timedelta(seconds=10))
    assert sam.received("account:sanction") == []


# --- the robot's answer as a job -----------------------------------------------------------------


def bot_answers(app, conversation_id: int) -> list[Message]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(Message)
                .join(User, User.id == Message.sender_id)
                .where(Message.conversation_id == conversation_id, User.is_bot)
            )
        )


def test_the_robots_answer_is_a_job_taken_over_when_its_process_dies_and_never_sent_twice(
    app, make_app, make_user, login, monkeypatch
):
    make_user("alice")
    alice = login("alice")
    conversation_id = alice.get("/api/v1/bot").get_json()["conversation_id"]
    never_started = []
    monkeypatch.setattr(queue, "execute", lambda app, job, now=None: never_started.append(job))
    sent = alice.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"client_msg_id": "question-0001", "body": {"type": "txt", "msg": "hello"}},
    )
    assert sent.status_code == 201
    monkeypatch.undo()
    gevent.sleep(0.05)
    [job] = never_started  # queued with the message, held by its process, which "died"
    assert job.kind == "bot.reply" and job.payload["message_id"] == sent.get_json()["message"]["id"]
    assert bot_answers(app, conversation_id) == []
    other = make_app()
    assert queue.run_due(other, now=job.lease_until + timedelta(seconds=1)) == ["done"]
    [answer] = bot_answers(app, conversation_id)
    assert answer.client_msg_id == f"bot-reply-{job.payload['message_id']}"
    # The job run again (its process died after answering, before deleting it): no second answer.
    with app.app_context():
        queue.enqueue("bot.reply", job.payload, run_after=utcnow() + timedelta(hours=1))
        db.session.commit()
    assert queue.run_due(other, now=utcnow() + timedelta(hours=2)) == ["done"]
    assert [m.id for m in bot_answers(app, conversation_id)] == [answer.id]


# --- two processes: the robot's job taken over after a kill ----------------------------------------


@pytest.fixture(scope="module")
def unit_server():
    server = FakeUnit().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster(app, database_url, instance_path, redis_url, unit_server, tmp_path_factory):
    env = server_env(
        database_url,
        instance_path,
        REDIS_URL=redis_url,
        LOGIN_RATE_LIMIT="1000 per minute",
        JOB_WORKER="true",
        JOB_LEASE_MARGIN_SECONDS="1",
        BOT_REPLY_TIMEOUT="3",
        UNIT_API_KEY=fake_unit.API_KEY,
        UNIT_SECRET_KEY=fake_unit.SECRET_KEY,
        UNIT_SERVICE_ID=fake_unit.SERVICE_ID,
        UNIT_BASE_URL=unit_server.url,
    )
    with ExitStack() as stack:
        yield Cluster(stack, env, tmp_path_factory.mktemp("jobs-cluster"), 2)


@pytest.mark.postgresql
def test_a_killed_process_robot_job_is_answered_once_by_the_other_process(
    app, cluster, unit_server, make_user
):
    unit_server.reset()
    make_user("alice")
    with ExitStack() as stack:
        devices = {node: stack.enter_context(cluster.device(node, "alice")) for node in ("a", "b")}
        assert [cluster.node_of(devices[node].http) for node in ("a", "b")] == ["a", "b"]
        opened = devices["a"].get_json("/api/v1/bot")
        bot_id, conversation_id = opened["bot"]["id"], opened["conversation_id"]
        unit_server.hang = True  # process a's answer is held at the provider
        question = devices["a"].send(conversation_id, "明天北京天气怎么样")["message"]
        unit_server.wait_for_hanging_chat()
        cluster.kill("a")
        unit_server.hang = False
        unit_server.release()

        def answer(message: dict) -> bool:
            return message["conversation_id"] == conversation_id and message["sender"]["id"] == bot_id

        # Taken over once the lease runs out (BOT_REPLY_TIMEOUT + 5 + 1 s), and answered by UNIT.
        devices["b"].wait_until(lambda: any(map(answer, devices["b"].events("message:new"))), timeout=20)
        time.sleep(1.0)
        [reply] = [m for m in devices["b"].events("message:new") if answer(m)]
        assert reply["body"]["msg"] == "UNIT heard: 明天北京天气怎么样"
        assert reply["client_msg_id"] == f"bot-reply-{question['id']}"
        assert len(unit_server.calls("chat")) == 2  # asked by a (killed), then by b
        with app.app_context():
            answers = db.session.scalar(
                select(func.count(Message.id)).where(
                    Message.conversation_id == conversation_id, Message.sender_id == bot_id
                )
            )
            assert answers == 1
            assert db.session.scalar(select(func.count(Job.id))) == 0
