"""Group commit: sends waiting at one moment are stored in one transaction, each acked after it,
and one send's failure is only its own (app/chat/pipeline.py)."""

from __future__ import annotations

from contextlib import contextmanager

import gevent
import pytest
from sqlalchemy import event, func, select

from app.chat import pipeline
from app.chat.conversations import open_direct
from app.chat.send import send_message
from app.errors import ApiError
from app.extensions import db
from app.groups import services as groups
from app.models import Conversation, ConversationMember, Message
from app.social import services as social
from tests.chat_helpers import connect


@pytest.fixture
def people(app, make_user, befriend):
    """Alice, friends with six others, and their direct conversations."""
    alice = make_user("alice")
    friends = [make_user(f"friend{i}") for i in range(6)]
    conversations = []
    for friend in friends:
        befriend(alice, friend)
        with app.app_context():
            conversations.append(open_direct(alice, friend)[0]["id"])
    return alice, friends, conversations


@contextmanager
def commits(app):
    """Counts the INSERTs into messages inside the block, and the commits of the transactions
    that ran them."""
    seen = {"commits": 0, "inserts": 0}

    def on_commit(conn):
        if conn.info.pop("inserted", False):
            seen["commits"] += 1

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO MESSAGES"):
            seen["inserts"] += 1
            conn.info["inserted"] = True

    with app.app_context():
        engine = db.engine
    event.listen(engine, "commit", on_commit)
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(engine, "commit", on_commit)
        event.remove(engine, "before_cursor_execute", on_execute)


def send_together(app, sends: list[tuple[int, int, str, dict]]) -> list:
    """Start every send at once, each in its own greenlet and app context, as socket events run;
    returns each one's answer (payload, created) or the ApiError it raised, in order."""

    def one(user_id, conversation_id, client_msg_id, body):
        with app.app_context():
            try:
                return pipeline.send(user_id, conversation_id, client_msg_id, body)
            except ApiError as error:
                return error

    greenlets = [gevent.spawn(one, *send) for send in sends]
    gevent.joinall(greenlets, raise_error=True)
    return [greenlet.value for greenlet in greenlets]


def text(msg: str) -> dict:
    return {"type": "txt", "msg": msg}


def batches(app) -> int:
    return pipeline._writer(app).batches


def seqs_of(app, conversation_id: int) -> list[int]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(Message.seq).where(Message.conversation_id == conversation_id).order_by(Message.seq)
            )
        )


def test_sends_waiting_together_are_stored_in_one_transaction(app, people):
    alice, friends, conversations = people
    sends = [(alice, c, f"one-{c}", text(f"to {c}")) for c in conversations]
    # Three in one conversation from both sides: they take its next seqs in order.
    sends += [(alice, conversations[0], "a-1", text("a1")), (friends[0], conversations[0], "f-1", text("f1"))]
    sends += [(alice, conversations[0], "a-2", text("a2"))]
    before = batches(app)

    with commits(app) as seen:
        answers = send_together(app, sends)

    assert all(created for _, created in answers)
    assert batches(app) == before + 1
    assert seen == {"commits": 1, "inserts": 1}  # one transaction, one executemany of the rows
    in_first = [payload["seq"] for payload, _ in answers if payload["conversation_id"] == conversations[0]]
    assert in_first == [1, 2, 3, 4]
    assert [payload["body"]["msg"] for payload, _ in answers[-3:]] == ["a1", "f1", "a2"]
    for conversation_id in conversations:
        assert seqs_of(app, conversation_id) == list(range(1, len(seqs_of(app, conversation_id)) + 1))
    with app.app_context():
        rows = db.session.execute(select(Message.id, Message.stream_pos).order_by(Message.id)).all()
        positions = [pos for _, pos in rows]
        assert positions == list(range(positions[0], positions[0] + len(sends)))
        assert {payload["id"] for payload, _ in answers} == {message_id for message_id, _ in rows}
        # Each conversation's last seq, position and the sender's read mark follow the batch.
        first = db.session.get(Conversation, conversations[0])
        assert (first.last_seq, first.stream_pos) == (4, positions[-1])
        member = db.session.get(ConversationMember, (conversations[0], alice))
        assert member.read_seq == 4


def test_each_is_delivered_after_the_commit_in_seq_order(app, people, login):
    alice, friends, conversations = people
    bob = connect(app, login("friend0"))
    bob.received()
    sends = [(alice, conversations[0], f"m-{i}", text(str(i))) for i in range(5)]
    sends.append((alice, conversations[1], "other", text("elsewhere")))

    send_together(app, sends)

    delivered = bob.received("message:new")
    assert [(m["conversation_id"], m["seq"], m["body"]["msg"]) for m in delivered] == [
        (conversations[0], seq, str(seq - 1)) for seq in range(1, 6)
    ]


def test_a_resend_in_a_batch_returns_the_original_and_the_others_are_stored(app, people):
    alice, friends, conversations = people
    with app.app_context():
        original, created = send_message(alice, conversations[0], "dup", text("first try"))
    assert created
    before = batches(app)

    with commits(app) as seen:
        answers = send_together(
            app,
            [
                (alice, conversations[1], "x-1", text("x1")),
                (alice, conversations[0], "dup", text("first try")),  # stored before: found first
                (alice, conversations[2], "x-2", text("x2")),
            ],
        )

    assert batches(app) == before + 1  # the others still went in together
    assert seen == {"commits": 1, "inserts": 1}  # the resend was answered from what is stored
    assert answers[1] == (original, False)
    assert answers[0][1] is True and answers[2][1] is True
    assert seqs_of(app, conversations[0]) == [1]
    assert seqs_of(app, conversations[1]) == [1]
    assert seqs_of(app, conversations[2]) == [1]


def test_a_resend_of_a_stored_message_to_another_conversation_is_refused(app, people):
    alice, _, conversations = people
    with app.app_context():
        send_message(alice, conversations[0], "used", text("first"))

    answers = send_together(
        app, [(alice, conversations[1], "used", text("again")), (alice, conversations[2], "new", text("n"))]
    )

    assert isinstance(answers[0], ApiError) and answers[0].code == "duplicate_client_msg_id"
    assert answers[1][1] is True
    assert seqs_of(app, conversations[1]) == []


def test_a_batch_that_fails_is_rolled_back_and_each_send_stored_alone(app, people, monkeypatch):
    alice, _, conversations = people
    calls = []
    real = pipeline._append_batch

    def fail_once(batch):
        calls.append(len(batch))
        real(batch)  # everything written, then the batch fails before its commit
        if len(calls) == 1:
            raise RuntimeError("the database refused")
        return real(batch)

    monkeypatch.setattr(pipeline, "_append_batch", fail_once)
    before = batches(app)

    answers = send_together(app, [(alice, c, f"f-{c}", text("f")) for c in conversations[:3]])

    assert calls == [3] and batches(app) == before
    assert all(created for _, created in answers)
    for conversation_id in conversations[:3]:
        assert seqs_of(app, conversation_id) == [1]  # nothing of the failed batch survived


def test_the_same_client_msg_id_twice_in_one_batch_is_stored_once(app, people):
    alice, _, conversations = people

    answers = send_together(
        app,
        [
            (alice, conversations[0], "twice", text("hello")),
            (alice, conversations[0], "twice", text("hello")),
            (alice, conversations[1], "twice", text("hello")),  # another conversation: refused
        ],
    )

    (first, created), (again, repeated) = answers[0], answers[1]
    assert created is True and repeated is False and again == first
    assert isinstance(answers[2], ApiError) and answers[2].code == "duplicate_client_msg_id"
    assert seqs_of(app, conversations[0]) == [1]
    assert seqs_of(app, conversations[1]) == []


def test_a_refused_send_fails_alone(app, people):
    alice, friends, conversations = people
    with app.app_context():
        social.block_user(friends[1], alice)

    answers = send_together(
        app,
        [(alice, conversations[0], "ok-1", text("fine")), (alice, conversations[1], "no", text("blocked"))],
    )

    assert answers[0][1] is True
    assert isinstance(answers[1], ApiError) and answers[1].code == "blocked"
    assert seqs_of(app, conversations[1]) == []


def test_group_messages_in_a_batch_reach_the_members_but_not_who_blocked_the_sender(
    app, make_user, befriend, login
):
    owner, member, blocker = make_user("olive"), make_user("max"), make_user("bea")
    befriend(owner, member)
    befriend(owner, blocker)
    with app.app_context():
        group = groups.create_group(owner, "Team", [member, blocker])
        conversation_id = group.conversation_id
        social.block_user(blocker, owner)
    max_device, bea_device = connect(app, login("max")), connect(app, login("bea"))
    max_device.received()
    bea_device.received()

    answers = send_together(app, [(owner, conversation_id, f"g-{i}", text(f"g{i}")) for i in range(3)])

    assert [payload["seq"] for payload, _ in answers] == [2, 3, 4]  # 1 is the group's creation notice
    assert [m["body"]["msg"] for m in max_device.received("message:new")] == ["g0", "g1", "g2"]
    assert bea_device.received("message:new") == []


def test_switched_off_each_send_commits_alone(app, people, monkeypatch):
    alice, _, conversations = people
    monkeypatch.setitem(app.config, "GROUP_COMMIT", False)
    before = batches(app)

    with commits(app) as seen:
        answers = send_together(app, [(alice, c, f"solo-{c}", text("solo")) for c in conversations[:4]])

    assert all(created for _, created in answers)
    assert batches(app) == before
    assert seen["inserts"] == 4 and seen["commits"] >= 4


def test_a_batch_is_never_larger_than_the_setting(app, people, monkeypatch):
    alice, _, conversations = people
    monkeypatch.setitem(app.config, "GROUP_COMMIT_BATCH", 2)
    before = batches(app)

    with commits(app) as seen:
        answers = send_together(app, [(alice, c, f"b-{c}", text("b")) for c in conversations[:5]])

    assert all(created for _, created in answers)
    assert batches(app) == before + 3
    assert seen["inserts"] == 3
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Message)) == 5


def test_a_change_of_the_right_to_speak_while_a_send_waits_is_checked_again(app, people, monkeypatch):
    alice, friends, conversations = people
    real = pipeline.Writer._store

    def block_first(self, batch):
        social.block_user(friends[0], alice)  # committed between the check and the write
        real(self, batch)

    monkeypatch.setattr(pipeline.Writer, "_store", block_first)

    [answer] = send_together(app, [(alice, conversations[0], "late", text("hi"))])

    assert isinstance(answer, ApiError) and answer.code == "blocked"
    assert seqs_of(app, conversations[0]) == []


def test_a_busy_process_does_not_starve_the_writer(app, people):
    alice, _, conversations = people
    spinning = [True]

    def spin():
        while spinning[0]:
            gevent.sleep(0)

    spinner = gevent.spawn(spin)
    try:
        with gevent.Timeout(5):
            [answer] = send_together(app, [(alice, conversations[0], "busy", text("hi"))])
    finally:
        spinning[0] = False
        spinner.join()
    assert answer[1] is True


def first(seen: list[str], prefix: str) -> int:
    return next(
        i for i, statement in enumerate(seen) if " ".join(statement.split()).upper().startswith(prefix)
    )


def test_a_batch_locks_member_rows_before_the_stream_counter(app, people, count_queries):
    alice, _, conversations = people

    with count_queries() as seen:
        send_together(app, [(alice, c, f"l-{c}", text("l")) for c in conversations[:3]])

    members = first(seen, "UPDATE CONVERSATION_MEMBERS")
    counter = first(seen, "UPDATE STREAM_COUNTER")
    assert first(seen, "UPDATE CONVERSATIONS") < members < counter


def test_a_group_edit_without_a_notice_locks_the_conversation_before_the_counter(
    app, make_user, befriend, count_queries
):
    owner, member = make_user("olive"), make_user("max")
    befriend(owner, member)
    with app.app_context():
        group = groups.create_group(owner, "Team", [member])
        group_id, conversation_id = group.id, group.conversation_id

    with count_queries() as seen, app.app_context():
        groups.update_group(owner, group_id, {"intro": "We ship on Fridays."})
        db.session.commit()

    counter = first(seen, "UPDATE STREAM_COUNTER")
    conversation = first(seen, "SELECT CONVERSATIONS.ID")
    assert conversation < counter
    assert conversation_id
