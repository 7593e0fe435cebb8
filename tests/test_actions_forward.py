"""Forwarding messages, one by one and as one chat history, with their media shared, not copied."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from app import ratelimit
from app.extensions import db
from app.groups.roles import mute_all
from app.groups.services import create_group, invite
from app.models import Message, UploadShare
from app.moderation.services import recall_message
from app.social.services import remove_friend
from tests.chat_helpers import Device, connect
from tests.test_media import fetch, image_bytes, uploaded

FORWARD = "/api/v1/messages/forward"


@dataclass
class World:
    alice: Device
    bob: Device
    carol: Device
    dave: Device
    erin_http: object  # signed in, in none of these conversations
    source: int  # alice–bob
    to_carol: int  # alice–carol
    group: int  # alice (owner), carol, dave
    group_id: int


def direct(device: Device, user_id: int) -> int:
    response = device.http.post("/api/v1/conversations", json={"user_id": user_id})
    assert response.status_code in (200, 201)
    return response.get_json()["conversation"]["id"]


@pytest.fixture
def world(app, make_user, login, befriend):
    alice_id, bob_id, carol_id, dave_id = (make_user(name) for name in ("alice", "bob", "carol", "dave"))
    make_user("erin")
    for other in (bob_id, carol_id, dave_id):
        befriend(alice_id, other)
    devices = [connect(app, login(name)) for name in ("alice", "bob", "carol", "dave")]
    alice = devices[0]
    with app.app_context():
        group = create_group(alice_id, "Trip", [carol_id, dave_id])
        group_id, group_conversation = group.id, group.conversation_id
    world = World(
        *devices, login("erin"), direct(alice, bob_id), direct(alice, carol_id), group_conversation, group_id
    )
    for device in devices:
        device.received()
    return world


def sources(world: World) -> dict:
    """Alice's text, photo and location in her chat with Bob (seqs 1, 2, 3)."""
    alice = world.alice
    photo = uploaded(alice.http, image_bytes("PNG", (60, 40)), "beach.png")
    sent = [
        alice.send(world.source, "look at this"),
        alice.send(world.source, body={"type": "img", "upload_id": photo["id"]}),
        alice.send(world.source, body={"type": "loc", "title": "Harbour", "lat": 22.28, "lng": 114.16}),
    ]
    assert all(ack["ok"] for ack in sent)
    for device in (world.alice, world.bob):
        device.received()
    return {"photo": photo, "messages": [ack["message"] for ack in sent]}


def forward(device: Device, conversation_id: int, seqs, targets, mode="separate", **extra):
    payload = {"conversation_id": conversation_id, "seqs": seqs, "mode": mode, "targets": targets, **extra}
    return device.http.post(FORWARD, json=payload)


def target(conversation_id: int, client_msg_id: str) -> dict:
    return {"conversation_id": conversation_id, "client_msg_id": client_msg_id}


def message_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Message.id)))


def media_status(client, url: str) -> int:
    return fetch(client, url).status_code


# --- separate -------------------------------------------------------------------------------


def test_separate_copies_every_message_in_order_to_every_target(app, world):
    sent = sources(world)
    photo_url = sent["photo"]["url"]
    assert media_status(world.carol.http, photo_url) == 403  # not in the chat it was sent in

    response = forward(
        world.alice,
        world.source,
        [3, 1, 2],
        [target(world.to_carol, "fwd-carol-1"), target(world.group, "fwd-group-1")],
    )
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [result["conversation_id"] for result in results] == [world.to_carol, world.group]
    for result, conversation_id, cmid in zip(
        results, [world.to_carol, world.group], ["fwd-carol-1", "fwd-group-1"], strict=True
    ):
        assert result["ok"] is True and result["duplicate"] is False
        copies = result["messages"]
        assert [copy["body"] for copy in copies] == [message["body"] for message in sent["messages"]]
        assert [copy["client_msg_id"] for copy in copies] == [f"{cmid}-{i}" for i in range(3)]
        assert all(copy["forwarded"] and copy["conversation_id"] == conversation_id for copy in copies)
        assert all(copy["sender"]["id"] == world.alice.user_id for copy in copies)
        assert [copy["seq"] for copy in copies] == sorted(copy["seq"] for copy in copies)

    # Delivered live like any message: Carol gets both targets' copies, Dave the group's.
    assert world.carol.received("message:new") == results[0]["messages"] + results[1]["messages"]
    assert world.dave.received("message:new") == results[1]["messages"]
    assert world.bob.received("message:new") == []
    # The photo is shared, not copied: members of the targets may fetch it now, strangers not.
    assert media_status(world.carol.http, photo_url) == 200
    assert media_status(world.dave.http, photo_url) == 200
    assert media_status(world.dave.http, sent["photo"]["thumb"]) == 200
    assert media_status(world.erin_http, photo_url) == 403
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(UploadShare)) == 2


def test_history_and_sync_carry_the_forwarded_flag(world):
    sources(world)
    forward(world.alice, world.source, [1], [target(world.to_carol, "fwd-flag-01")])
    page = world.carol.http.get(f"/api/v1/conversations/{world.to_carol}/messages").get_json()
    assert page["messages"][-1]["forwarded"] is True
    original = world.bob.http.get(f"/api/v1/conversations/{world.source}/messages").get_json()
    assert original["messages"][0]["forwarded"] is False


# --- merged ---------------------------------------------------------------------------------


def test_merged_stores_one_chat_history_with_its_media_viewable(world):
    sent = sources(world)
    response = forward(
        world.alice,
        world.source,
        [1, 2, 3],
        [target(world.to_carol, "fwd-merged-1")],
        mode="merged",
        title="Our trip",
    )
    result = response.get_json()["results"][0]
    assert result["ok"] is True
    [history] = result["messages"]
    assert history["type"] == "merged" and history["forwarded"] is True
    assert history["client_msg_id"] == "fwd-merged-1"
    body = history["body"]
    assert body["type"] == "merged" and body["title"] == "Our trip"
    assert body["items"] == [
        {
            "sender": {"id": world.alice.user_id, "nickname": message["sender"]["nickname"]},
            "type": message["type"],
            "body": message["body"],
            "created_at": message["created_at"],
        }
        for message in sent["messages"]
    ]
    assert world.carol.received("message:new") == [history]
    assert media_status(world.carol.http, sent["photo"]["url"]) == 200
    assert media_status(world.dave.http, sent["photo"]["url"]) == 403


def test_a_chat_history_can_be_forwarded_again_inside_another(world):
    sent = sources(world)
    first = forward(world.alice, world.source, [1, 2], [target(world.to_carol, "fwd-nest-01")], mode="merged")
    history = first.get_json()["results"][0]["messages"][0]
    assert history["body"]["title"] == "Chat history"  # the default title
    # Carol forwards Alice's history (and her own remark) to the group as a new history.
    world.carol.send(world.to_carol, "what a day")
    second = forward(
        world.carol,
        world.to_carol,
        [history["seq"], history["seq"] + 1],
        [target(world.group, "fwd-nest-02")],
        mode="merged",
        title="From Alice",
    )
    nested = second.get_json()["results"][0]["messages"][0]["body"]
    assert [item["type"] for item in nested["items"]] == ["merged", "txt"]
    assert nested["items"][0]["body"] == history["body"]
    assert nested["items"][0]["sender"]["id"] == world.alice.user_id
    # The photo two levels down is visible to Dave, a member of the group only.
    assert media_status(world.dave.http, sent["photo"]["url"]) == 200
    # A history forwarded separately stays a history.
    third = forward(world.carol, world.to_carol, [history["seq"]], [target(world.group, "fwd-nest-03")])
    assert third.get_json()["results"][0]["messages"][0]["body"] == history["body"]


def test_histories_nest_three_deep_at_most(app, world):
    world.alice.send(world.source, "deep")
    seq = 1
    for level in range(3):
        response = forward(
            world.alice, world.source, [seq], [target(world.source, f"fwd-deep-{level:02d}")], mode="merged"
        )
        seq = response.get_json()["results"][0]["messages"][0]["seq"]
    before = message_count(app)
    refused = forward(world.alice, world.source, [seq], [target(world.source, "fwd-deep-99")], mode="merged")
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "forward_too_large"
    assert message_count(app) == before


# --- one target at a time ------------------------------------------------------------------


def test_a_target_where_the_user_may_not_speak_gets_its_own_error(app, world, make_user, login, befriend):
    sources(world)
    with app.app_context():
        remove_friend(world.alice.user_id, world.carol.user_id)
    # A group Dave owns and muted: Alice, a plain member, may not speak there.
    with app.app_context():
        muted = create_group(world.dave.user_id, "Quiet", [world.alice.user_id])
        mute_all(world.dave.user_id, muted.id, True)
        muted_conversation = muted.conversation_id
    before = message_count(app)
    targets = [
        target(world.to_carol, "fwd-part-01"),
        target(muted_conversation, "fwd-part-02"),
        target(world.group, "fwd-part-03"),
    ]
    response = forward(world.alice, world.source, [1, 2], targets)
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [(result["conversation_id"], result["ok"]) for result in results] == [
        (world.to_carol, False),
        (muted_conversation, False),
        (world.group, True),
    ]
    assert results[0]["error"]["code"] == "not_friends"
    assert results[1]["error"]["code"] == "group_muted"
    assert len(results[2]["messages"]) == 2
    assert message_count(app) == before + 2


def test_a_target_the_user_is_not_in_is_not_found(app, world):
    sources(world)
    with app.app_context():
        others = create_group(world.dave.user_id, "Not Alice's", []).conversation_id
    response = forward(
        world.alice,
        world.source,
        [1],
        [target(others, "fwd-stranger"), target(world.to_carol, "fwd-fine-001")],
    )
    results = response.get_json()["results"]
    assert results[0]["ok"] is False and results[0]["error"]["code"] == "not_found"
    assert results[1]["ok"] is True


def test_a_resend_returns_the_stored_messages_and_stores_nothing(app, world):
    sources(world)
    targets = [target(world.to_carol, "fwd-again-1"), target(world.group, "fwd-again-2")]
    first = forward(world.alice, world.source, [1, 2, 3], targets).get_json()["results"]
    merged = forward(
        world.alice, world.source, [1, 2], [target(world.to_carol, "fwd-again-3")], mode="merged"
    )
    merged_first = merged.get_json()["results"][0]
    count = message_count(app)
    for device in (world.carol, world.dave):
        device.received()

    again = forward(world.alice, world.source, [1, 2, 3], targets).get_json()["results"]
    assert [result["messages"] for result in again] == [result["messages"] for result in first]
    assert all(result["duplicate"] for result in again)
    merged_again = forward(
        world.alice, world.source, [1, 2], [target(world.to_carol, "fwd-again-3")], mode="merged"
    )
    assert merged_again.get_json()["results"][0]["messages"] == merged_first["messages"]
    # Over the socket too.
    ack = world.alice.emit(
        "message:forward",
        {"conversation_id": world.source, "seqs": [1, 2, 3], "mode": "separate", "targets": targets},
    )
    assert ack["ok"] is True and [result["messages"] for result in ack["results"]] == [
        r["messages"] for r in first
    ]
    assert message_count(app) == count
    assert world.carol.received("message:new") == [] and world.dave.received("message:new") == []


def test_a_client_msg_id_used_in_another_conversation_is_that_targets_error(app, world):
    sources(world)
    forward(world.alice, world.source, [1], [target(world.to_carol, "fwd-reused-1")])
    response = forward(world.alice, world.source, [1], [target(world.group, "fwd-reused-1")])
    result = response.get_json()["results"][0]
    assert result["ok"] is False and result["error"]["code"] == "duplicate_client_msg_id"


def test_the_socket_event_forwards(world):
    sources(world)
    payload = {
        "conversation_id": world.source,
        "seqs": [1],
        "mode": "merged",
        "targets": [target(world.group, "fwd-socket-1")],
    }
    ack = world.alice.emit("message:forward", payload)
    assert ack["ok"] is True
    [history] = ack["results"][0]["messages"]
    assert history["type"] == "merged"
    assert world.dave.received("message:new") == [history]


# --- the sources ----------------------------------------------------------------------------


def test_sources_the_user_cannot_see_fail_the_whole_call(app, world, make_user, login, befriend):
    sources(world)
    # Frank joins the group after its first messages: he cannot forward those.
    world.alice.send(world.group, "before Frank")
    frank_id = make_user("frank")
    befriend(world.alice.user_id, frank_id)
    with app.app_context():
        invite(world.alice.user_id, world.group_id, [frank_id])
    frank = connect(app, login("frank"))
    world.alice.send(world.group, "after Frank")
    last = world.alice.http.get(f"/api/v1/conversations/{world.group}/messages").get_json()["messages"][-1][
        "seq"
    ]
    count = message_count(app)
    cases = [
        (frank, world.group, [last - 2, last]),  # the first one is from before he joined
        (world.alice, world.source, [1, 9]),  # seq 9 is not in this conversation
        (world.carol, world.source, [1]),  # not her conversation at all
    ]
    for device, conversation_id, seqs in cases:
        response = forward(device, conversation_id, seqs, [target(world.group, "fwd-hidden-1")])
        assert response.status_code == 404, response.get_json()
        assert response.get_json()["error"]["code"] in ("not_visible", "not_found")
    assert forward(frank, world.group, [last], [target(world.group, "fwd-seen-001")]).status_code == 200
    assert message_count(app) == count + 1


def test_a_recalled_source_is_refused(app, world):
    sources(world)
    recalled = world.alice.http.post(f"/api/v1/conversations/{world.source}/messages/2/recall", json={})
    assert recalled.status_code == 200
    count = message_count(app)
    response = forward(world.alice, world.source, [1, 2], [target(world.to_carol, "fwd-recall-1")])
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "already_recalled"
    assert message_count(app) == count


def test_a_system_message_is_not_forwardable(app, world):
    count = message_count(app)
    response = forward(world.alice, world.group, [1], [target(world.to_carol, "fwd-system-1")])
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "not_forwardable"
    assert message_count(app) == count


@pytest.mark.parametrize(
    "change",
    [
        {"seqs": list(range(1, 102))},
        {"seqs": []},
        {"targets": [target(1000 + i, f"fwd-many-{i:02d}") for i in range(11)]},
        {"targets": []},
        {"mode": "together"},
        {"targets": [target(1, "short")]},
        {"targets": [target(1, "x" * 57)]},
        {"targets": [target(1, "fwd-twice-1"), target(1, "fwd-twice-2")]},
        {"targets": [target(1, "fwd-same-01"), target(2, "fwd-same-01")]},
        {"title": "t" * 101},
        {"extra": True},
    ],
)
def test_bad_requests_are_refused_and_send_nothing(app, world, change):
    sources(world)
    count = message_count(app)
    payload = {
        "conversation_id": world.source,
        "seqs": [1],
        "mode": "separate",
        "targets": [target(world.to_carol, "fwd-bad-001")],
    }
    response = world.alice.http.post(FORWARD, json=payload | change)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_input"
    assert message_count(app) == count


def test_a_client_cannot_send_a_chat_history_itself(app, world):
    body = {"type": "merged", "title": "fake", "items": []}
    response = world.alice.http.post(
        f"/api/v1/conversations/{world.to_carol}/messages",
        json={"client_msg_id": "fake-merged-1", "body": body},
    )
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_input"
    ack = world.alice.send(world.to_carol, body=body)
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_input"
    assert message_count(app) == 1  # the group's creation notice only


# --- the send rate --------------------------------------------------------------------------


def test_a_forward_counts_against_the_send_rate_once_for_all_its_copies(app, world, monkeypatch):
    sources(world)
    # A new rate string counts in counters of its own: the sends above are not in them.
    monkeypatch.setitem(app.config, "MESSAGE_RATE_LIMIT", "7 per minute")
    targets = [target(world.to_carol, "fwd-rate-01"), target(world.group, "fwd-rate-02")]
    results = forward(world.alice, world.source, [1, 2, 3], targets).get_json()["results"]
    assert [result["ok"] for result in results] == [True, True]
    with app.app_context():
        assert ratelimit.used("7 per minute", "send", str(world.alice.user_id)) == 6
    stored = message_count(app)
    again = forward(world.alice, world.source, [1, 2, 3], [target(world.to_carol, "fwd-rate-03")])
    assert again.status_code == 429 and again.get_json()["error"]["code"] == "rate_limited"
    assert message_count(app) == stored


def test_a_forward_larger_than_the_rate_fits_an_unused_window(app, world, monkeypatch):
    for i in range(8):
        assert world.alice.send(world.source, f"m{i}")["ok"]
    monkeypatch.setitem(app.config, "MESSAGE_RATE_LIMIT", "5 per minute")
    result = forward(
        world.alice, world.source, list(range(1, 9)), [target(world.to_carol, "fwd-big-001")]
    ).get_json()["results"][0]
    assert result["ok"] is True and len(result["messages"]) == 8
    again = forward(world.alice, world.source, [1], [target(world.to_carol, "fwd-big-002")])
    assert again.status_code == 429 and again.get_json()["error"]["code"] == "rate_limited"


# --- media through a copy -------------------------------------------------------------------


def test_a_recalled_copy_no_longer_shares_its_media(world):
    sent = sources(world)
    url = sent["photo"]["url"]
    result = forward(world.alice, world.source, [2], [target(world.to_carol, "fwd-media-01")]).get_json()[
        "results"
    ][0]
    copy = result["messages"][0]
    assert media_status(world.carol.http, url) == 200
    recalled = world.alice.http.post(
        f"/api/v1/conversations/{world.to_carol}/messages/{copy['seq']}/recall", json={}
    )
    assert recalled.status_code == 200
    assert media_status(world.carol.http, url) == 403
    # The original is untouched: Bob still sees it.
    assert media_status(world.bob.http, url) == 200


def test_a_copy_keeps_its_media_when_the_sender_recalls_the_original_but_not_after_a_removal(
    app, world, make_user
):
    sent = sources(world)
    url = sent["photo"]["url"]
    result = forward(world.alice, world.source, [2], [target(world.to_carol, "fwd-keep-01")]).get_json()
    assert result["results"][0]["ok"] is True
    recalled = world.alice.http.post(f"/api/v1/conversations/{world.source}/messages/2/recall", json={})
    assert recalled.status_code == 200
    assert media_status(world.bob.http, url) == 403  # not through the recalled original
    assert media_status(world.carol.http, url) == 200  # the forwarded copy stays

    # The administrators remove a second forward's original: no copy serves the file any more.
    photo = uploaded(world.alice.http, image_bytes("PNG", (30, 30)), "banned.png")
    ack = world.alice.send(world.source, body={"type": "img", "upload_id": photo["id"]})
    seq = ack["message"]["seq"]
    assert (
        forward(world.alice, world.source, [seq], [target(world.to_carol, "fwd-keep-02")]).status_code == 200
    )
    assert media_status(world.carol.http, photo["url"]) == 200
    admin_id = make_user("root", is_admin=True)
    with app.app_context():
        recall_message(admin_id, ack["message"]["id"], "illegal content")
    assert media_status(world.carol.http, photo["url"]) == 403
