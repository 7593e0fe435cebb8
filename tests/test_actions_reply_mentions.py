"""Replies, @mentions, unread mentions and @all on the send path (app/chat/extras.py), through
the group commit and without it, and the robot answering a mention by id."""

from __future__ import annotations

import time

import gevent
import pytest
from sqlalchemy import func, select, update

from app.chat import pipeline
from app.chat.send import append_message
from app.errors import ApiError
from app.extensions import db
from app.models import Message, MessageHide, MessageMention, User, utcnow
from tests.chat_helpers import connect, new_client_msg_id


def code_of(response) -> str | None:
    body = response.get_json(silent=True)
    return body["error"]["code"] if body and "error" in body else None


@pytest.fixture(params=[True, False], ids=["group-commit", "alone"])
def group_commit(request, app, monkeypatch):
    """Run the test with the group commit on and off: both paths store the extras the same way."""
    monkeypatch.setitem(app.config, "GROUP_COMMIT", request.param)
    return request.param


@pytest.fixture
def team(app, make_user, login, befriend):
    """A group of an owner, an admin and a member; Carol, the owner's friend outside it; and the
    owner's direct conversation with the member."""
    ids = {name: make_user(name) for name in ("owner", "admin", "member", "carol")}
    for name in ("admin", "member", "carol"):
        befriend(ids["owner"], ids[name])
    clients = {name: login(name) for name in ids}
    created = clients["owner"].post(
        "/api/v1/groups", json={"name": "Team", "member_ids": [ids["admin"], ids["member"]]}
    )
    assert created.status_code == 201, created.get_json()
    group = created.get_json()["group"]
    role = clients["owner"].put(
        f"/api/v1/groups/{group['id']}/members/{ids['admin']}/role", json={"role": "admin"}
    )
    assert role.status_code == 200
    direct = clients["owner"].post("/api/v1/conversations", json={"user_id": ids["member"]})
    return group, ids, clients, direct.get_json()["conversation"]["id"]


def post(client, conversation_id: int, text: str = "hello", body: dict | None = None, **extras):
    return client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={
            "client_msg_id": new_client_msg_id(),
            "body": body or {"type": "txt", "msg": text},
            **extras,
        },
    )


def sent(client, conversation_id: int, text: str = "hello", **extras) -> dict:
    response = post(client, conversation_id, text, **extras)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["message"]


def stored(app, conversation_id: int) -> tuple[int, int]:
    """How many messages the conversation holds, and how many mention rows exist."""
    with app.app_context():
        messages = db.session.scalar(
            select(func.count(Message.id)).where(Message.conversation_id == conversation_id)
        )
        return messages, db.session.scalar(select(func.count()).select_from(MessageMention))


def mentioned(app, message_id: int) -> set[int]:
    with app.app_context():
        return set(
            db.session.scalars(select(MessageMention.user_id).where(MessageMention.message_id == message_id))
        )


def summary(client, conversation_id: int) -> dict:
    response = client.get(f"/api/v1/conversations/{conversation_id}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["conversation"]


def append(app, conversation_id: int, sender_id: int, body: dict) -> int:
    with app.app_context():
        message = append_message(conversation_id, db.session.get(User, sender_id), body, new_client_msg_id())
        db.session.commit()
        return message.seq


# --- replies --------------------------------------------------------------------------------


def test_a_reply_keeps_a_snapshot_of_what_it_answers(app, team, group_commit):
    group, ids, clients, _ = team
    conversation_id = group["conversation_id"]
    long_text = "长" * 60 + "x" * 60
    original = sent(clients["owner"], conversation_id, long_text)

    reply = sent(clients["member"], conversation_id, "agreed", reply_to=original["seq"])

    expected = {
        "seq": original["seq"],
        "sender": {"id": ids["owner"], "nickname": "owner"},
        "type": "txt",
        "text": long_text[:100],
        "recalled": False,
    }
    assert reply["reply"] == expected
    listed = clients["admin"].get(f"/api/v1/conversations/{conversation_id}/messages").get_json()
    assert listed["messages"][-1]["reply"] == expected
    with app.app_context():
        row = db.session.get(Message, reply["id"])
        assert (row.reply_to_seq, row.reply) == (original["seq"], expected)


def test_a_reply_quotes_a_file_by_name_a_location_by_title_and_other_media_by_type(app, team):
    group, ids, clients, _ = team
    conversation_id = group["conversation_id"]
    media = {"upload_id": "0" * 32, "url": "/media/x", "ext": "bin", "size": 10, "mime": "x/y"}
    file_seq = append(app, conversation_id, ids["admin"], {"type": "file", "name": "report.pdf", **media})
    image_seq = append(app, conversation_id, ids["admin"], {"type": "img", "w": 1, "h": 1, **media})
    video_seq = append(app, conversation_id, ids["admin"], {"type": "video", "w": 1, "h": 1, **media})
    place = {"type": "loc", "title": "Harbour Café", "lat": 22.3, "lng": 114.2}
    place_seq = post(clients["admin"], conversation_id, body=place).get_json()["message"]["seq"]

    quotes = {
        seq: sent(clients["member"], conversation_id, "re", reply_to=seq)["reply"]
        for seq in (file_seq, image_seq, video_seq, place_seq)
    }

    assert [
        (quotes[seq]["type"], quotes[seq]["text"]) for seq in (file_seq, image_seq, video_seq, place_seq)
    ] == [
        ("file", "report.pdf"),
        ("img", ""),
        ("video", ""),
        ("loc", "Harbour Café"),
    ]
    assert {quote["sender"]["id"] for quote in quotes.values()} == {ids["admin"]}


def test_a_reply_to_a_message_the_sender_cannot_see_is_refused_and_stores_nothing(app, team, group_commit):
    group, ids, clients, direct_id = team
    conversation_id = group["conversation_id"]
    before_carol = sent(clients["owner"], conversation_id, "before Carol joined")["seq"]
    invited = clients["owner"].post(
        f"/api/v1/groups/{group['id']}/members", json={"user_ids": [ids["carol"]]}
    )
    assert invited.status_code == 200, invited.get_json()
    last = sent(clients["owner"], conversation_id, "welcome")["seq"]
    # A seq that only the direct conversation has.
    while sent(clients["owner"], direct_id, "filler")["seq"] <= last + 2:
        pass
    hidden = sent(clients["owner"], conversation_id, "hidden for the member")
    with app.app_context():
        db.session.add(
            MessageHide(
                user_id=ids["member"],
                message_id=hidden["id"],
                conversation_id=conversation_id,
                seq=hidden["seq"],
                stream_pos=0,
            )
        )
        db.session.commit()
    counts = stored(app, conversation_id)

    refusals = [
        post(clients["carol"], conversation_id, reply_to=before_carol),
        post(clients["member"], conversation_id, reply_to=last + 2),  # exists elsewhere only
        post(clients["member"], conversation_id, reply_to=10_000),
        post(clients["member"], conversation_id, reply_to=hidden["seq"]),
    ]

    assert [(r.status_code, code_of(r)) for r in refusals] == [(404, "not_visible")] * 4
    assert refusals[0].get_json()["error"]["fields"] == {"reply_to": "not visible to you"}
    assert stored(app, conversation_id) == counts
    # What Carol can see, she may answer.
    assert sent(clients["carol"], conversation_id, "hi", reply_to=last)["reply"]["seq"] == last


def test_a_reply_to_a_recalled_message_is_refused(app, team, group_commit):
    group, _, clients, _ = team
    conversation_id = group["conversation_id"]
    original = sent(clients["owner"], conversation_id, "soon gone")
    with app.app_context():
        db.session.execute(update(Message).where(Message.id == original["id"]).values(recalled_at=utcnow()))
        db.session.commit()
    counts = stored(app, conversation_id)

    response = post(clients["member"], conversation_id, reply_to=original["seq"])

    assert (response.status_code, code_of(response)) == (409, "already_recalled")
    assert stored(app, conversation_id) == counts


# --- mentions -------------------------------------------------------------------------------


def test_mentions_are_stored_on_the_message_and_as_rows(app, team, group_commit):
    group, ids, clients, _ = team
    conversation_id = group["conversation_id"]

    message = sent(
        clients["member"],
        conversation_id,
        "@owner @admin look",
        mentions=[ids["owner"], ids["admin"], ids["owner"]],
    )

    assert (message["mentions"], message["mention_all"]) == ([ids["owner"], ids["admin"]], False)
    assert mentioned(app, message["id"]) == {ids["owner"], ids["admin"]}


@pytest.mark.parametrize("who", ["carol", "former", "self", "direct", "unknown"])
def test_mentions_of_non_members_or_oneself_or_in_a_direct_chat_are_refused(app, team, who, group_commit):
    group, ids, clients, direct_id = team
    conversation_id = group["conversation_id"]
    if who == "former":
        kicked = clients["owner"].delete(f"/api/v1/groups/{group['id']}/members/{ids['admin']}")
        assert kicked.status_code == 204
    target, mentions = {
        "carol": (conversation_id, [ids["admin"], ids["carol"]]),
        "former": (conversation_id, [ids["admin"]]),
        "self": (conversation_id, [ids["owner"]]),
        "direct": (direct_id, [ids["member"]]),
        "unknown": (conversation_id, [999_999]),
    }[who]
    counts = stored(app, target)

    response = post(clients["owner"], target, mentions=mentions)

    assert (response.status_code, code_of(response)) == (400, "invalid_mentions")
    assert "mentions" in response.get_json()["error"]["fields"]
    assert stored(app, target) == counts


def test_mention_all_is_for_owner_and_admins_unless_the_group_allows_everyone(app, team, group_commit):
    group, ids, clients, direct_id = team
    conversation_id = group["conversation_id"]
    counts = stored(app, conversation_id)

    refused = post(clients["member"], conversation_id, "@all", mention_all=True)
    in_direct = post(clients["owner"], direct_id, "@all", mention_all=True)

    assert (refused.status_code, code_of(refused)) == (403, "mention_all_not_allowed")
    assert (in_direct.status_code, code_of(in_direct)) == (403, "mention_all_not_allowed")
    assert stored(app, conversation_id) == counts
    by_admin = sent(clients["admin"], conversation_id, "@all meeting", mention_all=True)
    assert by_admin["mention_all"] is True
    assert mentioned(app, by_admin["id"]) == {ids["owner"], ids["member"]}

    # A member may not open @all to members; the owner may.
    assert (
        clients["member"]
        .patch(f"/api/v1/groups/{group['id']}", json={"members_mention_all": True})
        .status_code
        == 403
    )
    opened = clients["owner"].patch(f"/api/v1/groups/{group['id']}", json={"members_mention_all": True})
    assert opened.status_code == 200
    assert opened.get_json()["group"]["members_mention_all"] is True
    assert summary(clients["member"], conversation_id)["group"]["members_mention_all"] is True
    by_member = sent(
        clients["member"], conversation_id, "@all lunch", mention_all=True, mentions=[ids["admin"]]
    )
    assert mentioned(app, by_member["id"]) == {ids["owner"], ids["admin"]}


def test_the_socket_send_carries_the_extras_too(app, team):
    group, ids, clients, _ = team
    conversation_id = group["conversation_id"]
    original = sent(clients["owner"], conversation_id, "question")
    device = connect(app, clients["member"])

    ack = device.emit(
        "message:send",
        {
            "conversation_id": conversation_id,
            "client_msg_id": new_client_msg_id(),
            "body": {"type": "txt", "msg": "@owner answer"},
            "reply_to": original["seq"],
            "mentions": [ids["owner"]],
        },
    )
    refused = device.emit(
        "message:send",
        {
            "conversation_id": conversation_id,
            "client_msg_id": new_client_msg_id(),
            "body": {"type": "txt", "msg": "@carol"},
            "mentions": [ids["carol"]],
        },
    )

    assert ack["ok"] is True, ack
    assert ack["message"]["reply"]["seq"] == original["seq"]
    assert ack["message"]["mentions"] == [ids["owner"]]
    assert refused["ok"] is False and refused["error"]["code"] == "invalid_mentions"


# --- unread mentions ------------------------------------------------------------------------


def test_unread_mentions_count_until_read_past_them(app, team, group_commit):
    group, ids, clients, _ = team
    conversation_id = group["conversation_id"]
    assert (
        summary(clients["member"], conversation_id)["unread_mentions"],
        summary(clients["member"], conversation_id)["mention_seq"],
    ) == (0, None)
    first = sent(clients["owner"], conversation_id, "@member one", mentions=[ids["member"]])["seq"]
    sent(clients["owner"], conversation_id, "plain")
    second = sent(
        clients["admin"], conversation_id, "@member @owner two", mentions=[ids["member"], ids["owner"]]
    )["seq"]
    # Muting the conversation mutes its notifications, not the count of calls.
    assert (
        clients["member"].patch(f"/api/v1/conversations/{conversation_id}", json={"muted": True}).status_code
        == 200
    )

    member_view = summary(clients["member"], conversation_id)
    owner_view = summary(clients["owner"], conversation_id)
    listed = clients["member"].get("/api/v1/conversations").get_json()["conversations"]

    assert (member_view["unread_mentions"], member_view["mention_seq"]) == (2, first)
    assert (owner_view["unread_mentions"], owner_view["mention_seq"]) == (1, second)
    assert next(item for item in listed if item["id"] == conversation_id)["unread_mentions"] == 2
    assert summary(clients["admin"], conversation_id)["unread_mentions"] == 0

    device = connect(app, clients["member"])
    device.received()
    halfway = clients["member"].post(f"/api/v1/conversations/{conversation_id}/read", json={"seq": first})
    assert halfway.get_json()["unread_mentions"] == 1
    assert device.received("conversation:read")[-1]["unread_mentions"] == 1
    assert (summary(clients["member"], conversation_id)["mention_seq"]) == second
    done = device.emit("conversation:read", {"conversation_id": conversation_id, "seq": second})
    assert done["unread_mentions"] == 0
    member_view = summary(clients["member"], conversation_id)
    assert (member_view["unread_mentions"], member_view["mention_seq"]) == (0, None)


def test_mention_all_counts_for_every_member_but_the_sender(app, team, group_commit):
    group, ids, clients, _ = team
    conversation_id = group["conversation_id"]

    seq = sent(clients["owner"], conversation_id, "@all", mention_all=True)["seq"]

    views = {name: summary(clients[name], conversation_id) for name in ("owner", "admin", "member")}
    assert {name: (view["unread_mentions"], view["mention_seq"]) for name, view in views.items()} == {
        "owner": (0, None),
        "admin": (1, seq),
        "member": (1, seq),
    }


def test_a_mention_after_a_member_left_is_not_theirs_to_count(app, team):
    group, ids, clients, _ = team
    conversation_id = group["conversation_id"]
    sent(clients["owner"], conversation_id, "@member before", mentions=[ids["member"]])
    # Removed (a member who leaves by themselves no longer has the chat in their list at all).
    left = clients["owner"].delete(f"/api/v1/groups/{group['id']}/members/{ids['member']}")
    assert left.status_code == 204
    # A mention row written for them after they left (a race with the send) stays outside their window.
    with app.app_context():
        message = db.session.scalar(
            select(Message).where(Message.conversation_id == conversation_id).order_by(Message.seq.desc())
        )
        db.session.add(
            MessageMention(
                user_id=ids["member"],
                conversation_id=conversation_id,
                seq=message.seq + 1,
                message_id=message.id,
            )
        )
        db.session.commit()
    sent(clients["owner"], conversation_id, "after")

    assert summary(clients["member"], conversation_id)["unread_mentions"] == 1


# --- the group commit -----------------------------------------------------------------------


def send_together(app, sends: list[tuple]) -> list:
    """Start every send at once, each in its own greenlet (as socket events run)."""

    def one(user_id, conversation_id, text, extras):
        with app.app_context():
            try:
                return pipeline.send(
                    user_id, conversation_id, new_client_msg_id(), {"type": "txt", "msg": text}, extras
                )
            except ApiError as error:
                return error

    greenlets = [gevent.spawn(one, *send) for send in sends]
    gevent.joinall(greenlets, raise_error=True)
    return [greenlet.value for greenlet in greenlets]


def test_extras_of_several_sends_are_stored_in_one_batch(app, team):
    group, ids, clients, direct_id = team
    conversation_id = group["conversation_id"]
    original = sent(clients["owner"], conversation_id, "the plan")
    writer = pipeline._writer(app)
    before = writer.batches

    answers = send_together(
        app,
        [
            (ids["member"], conversation_id, "plain", None),
            (
                ids["member"],
                conversation_id,
                "@admin",
                {"reply_to": None, "mentions": [ids["admin"]], "mention_all": False},
            ),
            (
                ids["admin"],
                conversation_id,
                "@all",
                {"reply_to": original["seq"], "mentions": [], "mention_all": True},
            ),
            (ids["owner"], direct_id, "direct", None),
            (
                ids["member"],
                conversation_id,
                "@carol",
                {"reply_to": None, "mentions": [ids["carol"]], "mention_all": False},
            ),
        ],
    )

    assert writer.batches == before + 1
    plain, named, everyone, direct, refused = answers
    assert isinstance(refused, ApiError) and refused.code == "invalid_mentions"
    assert (plain[0]["mentions"], plain[0]["reply"], direct[0]["mention_all"]) == ([], None, False)
    assert named[0]["mentions"] == [ids["admin"]]
    assert everyone[0]["reply"]["text"] == "the plan" and everyone[0]["mention_all"] is True
    assert mentioned(app, named[0]["id"]) == {ids["admin"]}
    assert mentioned(app, everyone[0]["id"]) == {ids["owner"], ids["member"]}
    with app.app_context():
        row = db.session.get(Message, everyone[0]["id"])
        assert (row.reply_to_seq, row.mention_all, row.mentions) == (original["seq"], True, None)
        assert db.session.get(Message, plain[0]["id"]).mention_all is False
    # The admin's own send read the mention before it; the owner's @all waits for them.
    assert summary(clients["admin"], conversation_id)["unread_mentions"] == 0
    owner_view = summary(clients["owner"], conversation_id)
    assert (owner_view["unread_mentions"], owner_view["mention_seq"]) == (1, everyone[0]["seq"])


# --- the robot ------------------------------------------------------------------------------


def test_the_robot_answers_a_mention_by_id(app, team, befriend):
    app.extensions["parley.bot_store"].clear()  # switched on, nothing cached
    group, ids, clients, _ = team
    bot_id = clients["owner"].get("/api/v1/bot").get_json()["bot"]["id"]
    added = clients["owner"].post(f"/api/v1/groups/{group['id']}/members", json={"user_ids": [bot_id]})
    assert added.status_code == 200, added.get_json()
    conversation_id = group["conversation_id"]

    sent(clients["member"], conversation_id, "owner, what time is it?", mentions=[ids["owner"]])
    question = sent(clients["member"], conversation_id, "几点了", mentions=[bot_id])

    deadline = time.monotonic() + 10
    while True:
        messages = (
            clients["member"].get(f"/api/v1/conversations/{conversation_id}/messages").get_json()["messages"]
        )
        answers = [m for m in messages if m["sender"] and m["sender"]["id"] == bot_id]
        if answers or time.monotonic() > deadline:
            break
        gevent.sleep(0.02)
    assert [m["client_msg_id"] for m in answers] == [f"bot-reply-{question['id']}"]
    assert answers[0]["body"]["msg"].startswith("现在是 ")


# --- paging around a message ----------------------------------------------------------------


@pytest.fixture
def thirty(app, team):
    """The owner's direct conversation with the member, holding messages 1..30."""
    _, ids, clients, direct_id = team
    for i in range(30):
        append(app, direct_id, ids["owner"], {"type": "txt", "msg": f"m{i + 1}"})
    return clients, direct_id


def around(client, conversation_id: int, query: str):
    return client.get(f"/api/v1/conversations/{conversation_id}/messages?{query}")


@pytest.mark.parametrize(
    ("query", "seqs", "more_before", "more_after"),
    [
        ("around_seq=15&limit=10", range(11, 21), True, True),
        ("around_seq=2&limit=10", range(1, 11), False, True),
        ("around_seq=29&limit=10", range(21, 31), True, False),
        ("around_seq=15&limit=1", [15], True, True),
        ("around_seq=15", range(1, 31), False, False),
    ],
)
def test_a_page_around_a_message_holds_it_and_its_neighbours(thirty, query, seqs, more_before, more_after):
    clients, direct_id = thirty
    response = around(clients["member"], direct_id, query)
    assert response.status_code == 200, response.get_json()
    page = response.get_json()
    assert [m["seq"] for m in page["messages"]] == list(seqs)
    assert (page["has_more_before"], page["has_more_after"]) == (more_before, more_after)
    assert page["has_more"] == page["has_more_before"]


def test_a_page_around_a_message_outside_the_window_is_empty(app, team):
    group, ids, clients, _ = team
    conversation_id = group["conversation_id"]
    early = sent(clients["owner"], conversation_id, "before Carol")["seq"]
    clients["owner"].post(f"/api/v1/groups/{group['id']}/members", json={"user_ids": [ids["carol"]]})
    later = sent(clients["owner"], conversation_id, "after Carol")["seq"]
    empty = {"messages": [], "has_more_before": False, "has_more_after": False, "has_more": False}

    assert around(clients["carol"], conversation_id, f"around_seq={early}").get_json() == empty
    assert around(clients["carol"], conversation_id, f"around_seq={later + 5}").get_json() == empty
    assert around(clients["carol"], conversation_id, "around_seq=9223372036854775807").get_json() == empty
    seen = around(clients["carol"], conversation_id, f"around_seq={later}").get_json()["messages"]
    assert seen[-1]["seq"] == later and all(m["seq"] > early for m in seen)
    stranger = around(clients["carol"], 999_999, "around_seq=1")
    assert (stranger.status_code, code_of(stranger)) == (404, "not_found")


@pytest.mark.parametrize("other", ["before_seq=10", "after_seq=10"])
def test_around_does_not_combine_with_the_other_cursors(thirty, other):
    clients, direct_id = thirty
    response = around(clients["member"], direct_id, f"around_seq=15&{other}")
    assert (response.status_code, code_of(response)) == (400, "invalid_input")
    assert "around_seq" in response.get_json()["error"]["fields"]


def test_a_page_around_costs_the_same_statements_however_long_the_history(app, thirty, count_queries):
    clients, direct_id = thirty
    owner = clients["owner"].get("/api/v1/auth/me").get_json()["user"]["id"]
    counts = []
    for _ in range(2):
        with count_queries() as statements:
            assert around(clients["member"], direct_id, "around_seq=15&limit=6").status_code == 200
        counts.append(len(statements))
        for i in range(100):
            append(app, direct_id, owner, {"type": "txt", "msg": f"more {i}"})
    assert counts == [3, 3]  # the sign-in, then one statement per side
