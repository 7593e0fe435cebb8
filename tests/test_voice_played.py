"""Played state of voice messages: kept per user, told to their other devices live
(`message:played`) and through /sync (`played`), read as each message's `played` flag in pages,
sync and search; refused for what is not a visible, unrecalled voice message."""

from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select

from app.chat import plays
from app.chat.stream import current_stream_pos
from app.extensions import db
from app.models import Conversation, MessagePlay
from tests.chat_helpers import connect
from tests.test_voice_messages import code_of, send_voice


def played_url(conversation_id: int, seq: int) -> str:
    return f"/api/v1/conversations/{conversation_id}/messages/{seq}/played"


def page(device, conversation_id: int, **query) -> dict[int, dict]:
    response = device.http.get(f"/api/v1/conversations/{conversation_id}/messages", query_string=query)
    assert response.status_code == 200, response.get_json()
    return {message["seq"]: message for message in response.get_json()["messages"]}


def synced(device, cursor: str = "0") -> dict:
    result = device.http.get("/api/v1/sync", query_string={"cursor": cursor}).get_json()
    assert result["has_more"] is False
    return result


def state(app) -> tuple:
    """What a refused or repeated play must leave as it was."""
    with app.app_context():
        rows = db.session.execute(
            select(MessagePlay.user_id, MessagePlay.message_id, MessagePlay.stream_pos).order_by(
                MessagePlay.user_id, MessagePlay.message_id
            )
        ).all()
        return rows, current_stream_pos()


def play_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(MessagePlay))


@pytest.fixture
def voice(pair):
    """Alice sent Bob a voice message (seq 1) and a text (seq 2); every device's events dropped."""
    alice_phone, alice_laptop, bob, conversation_id = pair
    message = send_voice(alice_phone, conversation_id, seconds=1.0)
    assert alice_phone.send(conversation_id, "and a text")["ok"]
    for device in (alice_phone, alice_laptop, bob):
        device.received()
    return message


# --- the flag and the play ------------------------------------------------------------------


def test_a_play_shows_in_history_around_pages_and_sync(pair, voice):
    alice_phone, _, bob, conversation_id = pair
    cursor = synced(bob)["cursor"]
    assert page(bob, conversation_id)[1]["played"] is False
    assert page(bob, conversation_id, around_seq=1)[1]["played"] is False
    assert [m["played"] for m in synced(bob)["messages"] if m["seq"] == 1] == [False]
    # Only voice messages carry the flag.
    assert "played" not in page(bob, conversation_id)[2]
    # The sender's own are played already.
    assert page(alice_phone, conversation_id)[1]["played"] is True

    response = bob.http.put(played_url(conversation_id, 1), json={})
    assert response.status_code == 200
    assert response.get_json() == {"conversation_id": conversation_id, "seq": 1, "played": True}

    assert page(bob, conversation_id)[1]["played"] is True
    assert page(bob, conversation_id, around_seq=2)[1]["played"] is True
    assert page(bob, conversation_id, after_seq=0)[1]["played"] is True
    fresh = synced(bob)
    assert [m["played"] for m in fresh["messages"] if m["seq"] == 1] == [True]
    # A device that synced before the play learns it from `played`; one after it does not again.
    since = synced(bob, cursor)
    assert since["played"] == [{"conversation_id": conversation_id, "seq": 1}]
    assert since["messages"] == []
    assert synced(bob, since["cursor"])["played"] == []
    # Alice's state is her own: nothing of Bob's play.
    assert synced(alice_phone, cursor)["played"] == []


def test_a_play_reaches_the_players_other_devices_only(pair, voice, app, login):
    alice_phone, alice_laptop, bob, conversation_id = pair
    bob_laptop = connect(app, login("bob"))
    bob_laptop.received()
    ack = bob.emit("message:play", {"conversation_id": conversation_id, "seq": 1})
    assert ack == {"ok": True, "conversation_id": conversation_id, "seq": 1, "played": True}
    expected = {"conversation_id": conversation_id, "seq": 1, "message_id": voice["id"]}
    assert bob_laptop.received("message:played") == [expected]
    assert bob.received("message:played") == [expected]
    assert alice_phone.received("message:played") == []
    assert alice_laptop.received("message:played") == []


def test_playing_again_changes_nothing_and_tells_nobody(pair, voice, app, login):
    _, _, bob, conversation_id = pair
    bob_laptop = connect(app, login("bob"))
    assert bob.http.put(played_url(conversation_id, 1), json={}).status_code == 200
    bob.received()
    bob_laptop.received()
    before = state(app)
    assert play_count(app) == 1
    ack = bob_laptop.emit("message:play", {"conversation_id": conversation_id, "seq": 1})
    assert ack == {"ok": True, "conversation_id": conversation_id, "seq": 1, "played": True}
    assert bob.http.put(played_url(conversation_id, 1), json={}).get_json()["played"] is True
    assert state(app) == before
    assert bob.received("message:played") == [] and bob_laptop.received("message:played") == []


def test_two_devices_racing_make_one_row_and_one_event(pair, voice, app, monkeypatch):
    """The device that loses the race (its check ran before the other's row was committed) inserts
    nothing and tells nobody, on both databases."""
    _, _, bob, conversation_id = pair
    find = plays.visible_message

    def other_device_first(member, seq):
        with db.engine.begin() as other:  # the other device's transaction commits meanwhile
            other.execute(
                insert(MessagePlay).values(
                    user_id=bob.user_id,
                    message_id=voice["id"],
                    conversation_id=conversation_id,
                    seq=1,
                    stream_pos=1,
                )
            )
        return find(member, seq)

    monkeypatch.setattr(plays, "visible_message", other_device_first)
    ack = bob.emit("message:play", {"conversation_id": conversation_id, "seq": 1})
    assert ack == {"ok": True, "conversation_id": conversation_id, "seq": 1, "played": True}
    assert play_count(app) == 1
    assert bob.received("message:played") == []


def test_ones_own_voice_message_is_played_without_a_row(pair, voice, app):
    alice_phone, alice_laptop, bob, conversation_id = pair
    before = state(app)
    ack = alice_phone.emit("message:play", {"conversation_id": conversation_id, "seq": 1})
    assert ack == {"ok": True, "conversation_id": conversation_id, "seq": 1, "played": True}
    assert alice_phone.http.put(played_url(conversation_id, 1), json={}).status_code == 200
    assert state(app) == before
    assert alice_laptop.received("message:played") == [] and bob.received("message:played") == []


# --- refusals -------------------------------------------------------------------------------


def test_only_a_visible_unrecalled_voice_message_is_played(pair, voice, app, make_user, login):
    alice_phone, _, bob, conversation_id = pair
    make_user("mallory")
    mallory = connect(app, login("mallory"))
    before = state(app)

    def refused(device, seq, conversation=conversation_id) -> tuple[str | None, str | None, int]:
        ack = device.emit("message:play", {"conversation_id": conversation, "seq": seq})
        response = device.http.put(played_url(conversation, seq), json={})
        assert code_of(ack) == code_of(response)
        return code_of(ack), ack["error"]["fields"].get("seq"), response.status_code

    assert refused(bob, 2) == ("not_audio_message", "not a voice message", 400)
    assert refused(bob, 3)[::2] == ("not_visible", 404)  # no such message yet
    assert refused(bob, 0)[::2] == ("not_visible", 404)
    assert refused(mallory, 1)[::2] == ("not_found", 404)
    assert refused(bob, 1, conversation_id + 1000)[::2] == ("not_found", 404)
    assert state(app) == before
    # Deleted for oneself: not there to play.
    assert (
        bob.http.post(
            f"/api/v1/conversations/{conversation_id}/messages/hide", json={"seqs": [1]}
        ).status_code
        == 200
    )
    before = state(app)
    assert refused(bob, 1)[::2] == ("not_visible", 404)
    assert state(app) == before
    assert mallory.received("message:played") == [] and bob.received("message:played") == []


def test_a_recalled_voice_message_is_not_played(pair, app):
    alice_phone, _, bob, conversation_id = pair
    send_voice(alice_phone, conversation_id, seconds=1.0)
    assert (
        alice_phone.http.post(
            f"/api/v1/conversations/{conversation_id}/messages/1/recall", json={}
        ).status_code
        == 200
    )
    bob.received()
    before = state(app)
    response = bob.http.put(played_url(conversation_id, 1), json={})
    assert (response.status_code, code_of(response)) == (409, "already_recalled")
    ack = bob.emit("message:play", {"conversation_id": conversation_id, "seq": 1})
    assert code_of(ack) == "already_recalled"
    assert state(app) == before
    assert bob.received("message:played") == []
    # A recalled voice message keeps its type, and its flag (never played here).
    assert page(bob, conversation_id)[1]["played"] is False


@pytest.mark.parametrize(
    "payload",
    [
        None,
        {},
        {"conversation_id": 1},
        {"seq": 1},
        {"conversation_id": "1", "seq": 1},
        {"conversation_id": 0, "seq": 1},
        {"conversation_id": 1, "seq": -1},
        {"conversation_id": 1, "seq": 2**63},
        {"conversation_id": 1, "seq": 1, "extra": True},
        [1, 1],
    ],
)
def test_a_malformed_play_is_invalid_input(pair, voice, app, payload):
    _, _, bob, _ = pair
    before = state(app)
    ack = bob.emit("message:play", payload)
    assert ack["ok"] is False and code_of(ack) == "invalid_input", ack
    assert state(app) == before


def test_bad_ids_in_the_path_are_not_found(pair, voice, app):
    _, _, bob, conversation_id = pair
    before = state(app)
    for path in (
        played_url(conversation_id, 2**63),
        played_url(2**31, 1),
        f"/api/v1/conversations/{conversation_id}/messages/x/played",
        f"/api/v1/conversations/{conversation_id}/messages/-1/played",
    ):
        assert bob.http.put(path, json={}).status_code == 404, path
    # Only PUT plays; reading the played state this way is not a route.
    assert bob.http.get(played_url(conversation_id, 1)).status_code == 405
    assert state(app) == before


def test_signed_out_is_refused(pair, voice, app):
    _, _, bob, conversation_id = pair
    bob.http.post("/api/v1/auth/logout", json={})
    response = bob.http.put(played_url(conversation_id, 1), json={})
    assert (response.status_code, code_of(response)) == (401, "unauthenticated")
    assert play_count(app) == 0


# --- members who left, members who joined later -----------------------------------------------


@pytest.fixture
def team(app, make_user, login, befriend):
    """Alice's group with Bob and Carol, each with a socket."""
    ids = {name: make_user(name) for name in ("alice", "bob", "carol", "dave")}
    for name in ("bob", "carol", "dave"):
        befriend(ids["alice"], ids[name])
    devices = {name: connect(app, login(name)) for name in ids}
    created = devices["alice"].http.post(
        "/api/v1/groups", json={"name": "Team", "member_ids": [ids["bob"], ids["carol"]]}
    )
    assert created.status_code == 201, created.get_json()
    return created.get_json()["group"], ids, devices


def test_a_former_member_plays_what_they_saw_and_a_later_one_only_what_came_after(team, app):
    group, ids, devices = team
    conversation_id = group["conversation_id"]
    first = send_voice(devices["alice"], conversation_id, seconds=1.0)
    assert (
        devices["carol"].http.delete(f"/api/v1/groups/{group['id']}/members/{ids['carol']}").status_code
        == 204
    )
    assert (
        devices["alice"]
        .http.post(f"/api/v1/groups/{group['id']}/members", json={"user_ids": [ids["dave"]]})
        .status_code
        == 200
    )
    later = send_voice(devices["bob"], conversation_id, seconds=1.0)
    for device in devices.values():
        device.received()

    # Carol left after the first: she still sees it (unplayed) and may play it; not the later one.
    assert page(devices["carol"], conversation_id)[first["seq"]]["played"] is False
    ack = devices["carol"].emit("message:play", {"conversation_id": conversation_id, "seq": first["seq"]})
    assert ack["ok"] and ack["played"] is True
    assert page(devices["carol"], conversation_id)[first["seq"]]["played"] is True
    ack = devices["carol"].emit("message:play", {"conversation_id": conversation_id, "seq": later["seq"]})
    assert code_of(ack) == "not_visible"
    # Dave joined after the first: only the later one is his to play.
    ack = devices["dave"].emit("message:play", {"conversation_id": conversation_id, "seq": first["seq"]})
    assert code_of(ack) == "not_visible"
    ack = devices["dave"].emit("message:play", {"conversation_id": conversation_id, "seq": later["seq"]})
    assert ack["ok"]
    # Each play told its player only.
    assert [len(devices[name].received("message:played")) for name in ("alice", "bob", "carol", "dave")] == [
        0,
        0,
        1,
        1,
    ]
    # In a group, each member's flag is their own.
    assert page(devices["alice"], conversation_id)[first["seq"]]["played"] is True  # her own
    assert page(devices["alice"], conversation_id)[later["seq"]]["played"] is False
    assert page(devices["bob"], conversation_id)[first["seq"]]["played"] is False
    assert page(devices["bob"], conversation_id)[later["seq"]]["played"] is True  # his own


# --- what a page costs, search, the row ----------------------------------------------------------------


def test_the_flag_costs_one_statement_however_many_voice_messages(pair, app, count_queries):
    alice_phone, _, bob, conversation_id = pair
    url = f"/api/v1/conversations/{conversation_id}/messages"
    costs = []
    for total in (2, 8):
        while len(page(bob, conversation_id)) < total:
            send_voice(alice_phone, conversation_id, seconds=0.5)
        assert bob.http.put(played_url(conversation_id, 1), json={}).status_code == 200
        with count_queries() as statements:
            response = bob.http.get(url)
        flags = [m["played"] for m in response.get_json()["messages"]]
        assert flags == [True] + [False] * (total - 1)
        costs.append(len(statements))
        assert sum("message_plays" in statement for statement in statements) == 1
    assert costs[0] == costs[1]
    # A page with no one else's voice message does not ask at all.
    with count_queries() as statements:
        assert page(alice_phone, conversation_id)[1]["played"] is True
    assert not any("message_plays" in statement for statement in statements)


def test_the_play_takes_a_stream_position_after_the_message(pair, voice, app):
    _, _, bob, conversation_id = pair
    assert bob.http.put(played_url(conversation_id, 1), json={}).status_code == 200
    with app.app_context():
        row = db.session.scalar(select(MessagePlay))
        conversation = db.session.get(Conversation, conversation_id)
        assert (row.user_id, row.message_id, row.conversation_id, row.seq) == (
            bob.user_id,
            voice["id"],
            conversation_id,
            1,
        )
        assert row.stream_pos == current_stream_pos() > conversation.stream_pos


def test_listing_voice_messages_in_search_carries_the_flag(pair, voice):
    alice_phone, _, bob, conversation_id = pair

    def listed(device) -> list[tuple[int, bool]]:
        response = device.http.get("/api/v1/search/messages", query_string={"q": "", "type": "audio"})
        assert response.status_code == 200, response.get_json()
        return [(hit["message"]["seq"], hit["message"]["played"]) for hit in response.get_json()["hits"]]

    assert listed(bob) == [(1, False)]
    assert listed(alice_phone) == [(1, True)]
    assert bob.http.put(played_url(conversation_id, 1), json={}).status_code == 200
    assert listed(bob) == [(1, True)]


def test_pinned_voice_messages_carry_the_readers_flag(pair, voice):
    alice_phone, _, bob, conversation_id = pair
    pins_url = f"/api/v1/conversations/{conversation_id}/pins"

    def pinned(device) -> list[tuple[int, bool]]:
        response = device.http.get(pins_url)
        assert response.status_code == 200, response.get_json()
        return [(item["seq"], item["message"].get("played")) for item in response.get_json()["pins"]]

    answer = alice_phone.http.put(f"{pins_url}/1", json={})
    assert answer.status_code == 200, answer.get_json()
    assert [item["message"]["played"] for item in answer.get_json()["pins"]] == [True]  # her own
    # The event goes to every member alike: like `message:new`, it carries no one's flag.
    assert [[p["message"].get("played") for p in e["pins"]] for e in bob.received("conversation:pins")] == [
        [None]
    ]
    assert pinned(bob) == [(1, False)]
    assert pinned(alice_phone) == [(1, True)]
    assert bob.http.put(played_url(conversation_id, 1), json={}).status_code == 200
    assert pinned(bob) == [(1, True)]
    again = bob.http.put(f"{pins_url}/2", json={})  # a direct chat: either side pins
    assert again.status_code == 200, again.get_json()
    assert [(item["seq"], item["message"].get("played")) for item in again.get_json()["pins"]] == [
        (2, None),  # a text carries no flag
        (1, True),
    ]
