"""A voice message everywhere else a message appears: push previews, search by type, the admin
console, the robot, reply quotes, forward and recall, the server API."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import func, select, update

from app.bots import service as bots
from app.extensions import db
from app.media.storage import get_storage
from app.models import Message, MessageHide, StreamCounter, Upload, User
from app.push import sender
from tests import fake_unit, media_samples
from tests.chat_helpers import new_client_msg_id
from tests.fake_push import FakePushService
from tests.fake_unit import FakeUnit
from tests.test_bot import open_bot, wait_for_messages
from tests.test_media import fetch, image_bytes, upload
from tests.test_push import settle, subscribed

SEARCH = "/api/v1/search/messages"


@pytest.fixture(scope="module")
def push_service():
    service = FakePushService().start()
    yield service
    service.stop()


@pytest.fixture
def push(app, push_service, monkeypatch):
    """As tests/test_push.py's: the fake push service is the one host allowed."""
    push_service.reset()
    monkeypatch.setitem(app.config, "PUSH_ALLOWED_HOSTS", (push_service.host,))
    yield push_service
    settle(app)


@pytest.fixture(scope="module")
def unit_service():
    server = FakeUnit().start()
    yield server
    server.stop()


@pytest.fixture
def unit(app, unit_service, monkeypatch):
    """As tests/test_bot.py's: the robot answers through the fake Baidu UNIT."""
    unit_service.reset()
    app.extensions["parley.bot_store"].clear()
    monkeypatch.setitem(app.config, "UNIT_API_KEY", fake_unit.API_KEY)
    monkeypatch.setitem(app.config, "UNIT_SECRET_KEY", fake_unit.SECRET_KEY)
    monkeypatch.setitem(app.config, "UNIT_SERVICE_ID", fake_unit.SERVICE_ID)
    monkeypatch.setitem(app.config, "UNIT_BASE_URL", unit_service.url)
    yield unit_service
    app.extensions["parley.bot_store"].clear()


@pytest.fixture
def world(app, make_user, login, befriend):
    """Alice and Bob, friends with a direct chat; Carol, Alice's friend, not in it; Erin,
    nobody's friend. Each signed in, no socket."""
    ids = {name: make_user(name, nickname=name.title()) for name in ("alice", "bob", "carol", "erin")}
    befriend(ids["alice"], ids["bob"])
    befriend(ids["alice"], ids["carol"])
    clients = {name: login(name) for name in ids}
    opened = clients["alice"].post("/api/v1/conversations", json={"user_id": ids["bob"]})
    return clients, ids, opened.get_json()["conversation"]["id"]


def stored_upload(app, user_id: int, data: bytes, kind: str, mime: str, ext: str, **columns) -> str:
    """An upload of `user_id` stored as the upload route stores one (its bytes in the storage, its
    row), without going through the route."""
    with app.app_context():
        storage = get_storage()
        upload_id = secrets.token_hex(16)
        key = f"{upload_id[:2]}/{upload_id}"
        source = storage.scratch() / "upload"
        source.write_bytes(data)
        storage.put(key, source)
        db.session.add(
            Upload(
                id=upload_id,
                owner_id=user_id,
                kind=kind,
                mime=mime,
                ext=ext,
                size=len(data),
                storage_key=key,
                **columns,
            )
        )
        db.session.commit()
    return upload_id


def voice_upload(client, seconds: float = 7.0) -> str:
    """A voice recording (a real Opus/WebM file) uploaded as the composer's recorder does."""
    data = media_samples.audio(seconds, "webm")
    response = upload(client, data, "voice.webm", purpose="voice", duration=str(seconds))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["upload"]["id"]


def user_id_of(client) -> int:
    return client.get("/api/v1/auth/me").get_json()["user"]["id"]


def send(client, conversation_id: int, body: dict, **extras) -> dict:
    response = client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"client_msg_id": new_client_msg_id(), "body": body, **extras},
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["message"]


def send_voice(app, client, conversation_id: int, seconds: float = 7.0, **extras) -> dict:
    upload_id = voice_upload(client, seconds)
    return send(client, conversation_id, {"type": "audio", "upload_id": upload_id}, **extras)


def text(msg: str) -> dict:
    return {"type": "txt", "msg": msg}


def state(app) -> tuple:
    with app.app_context():
        return (
            db.session.scalar(select(func.count(Message.id))),
            db.session.scalar(select(func.count()).select_from(MessageHide)),
            db.session.scalar(select(StreamCounter.pos)),
        )


# --- push previews ---------------------------------------------------------------------------


def voice_job(duration, *, direct_chat: bool = True) -> sender.PushJob:
    return sender.PushJob(
        message_id=1,
        conversation_id=5,
        seq=1,
        sender_id=2,
        sender_nickname="Alice",
        direct=direct_chat,
        type="audio",
        body={"type": "audio", "url": "/media/" + "a" * 32, "duration": duration, "size": 9},
        mentions=frozenset(),
        mention_all=False,
    )


@pytest.mark.parametrize(
    ("duration", "english", "chinese"),
    [
        (7.4, "[Voice] 0:07", "[语音] 7″"),
        (6.5, "[Voice] 0:07", "[语音] 7″"),  # half a second rounds up, as the client's Math.round
        (0.2, "[Voice] 0:01", "[语音] 1″"),  # at least one second
        (59.6, "[Voice] 1:00", "[语音] 60″"),
        (None, "[Voice] 0:01", "[语音] 1″"),
    ],
)
def test_a_voice_messages_push_says_voice_and_its_length(duration, english, chinese):
    job = voice_job(duration)
    english_payload = sender.payload(job, None, True, "en")
    chinese_payload = sender.payload(job, None, True, "zh-CN")
    assert english_payload["body"] == english
    assert chinese_payload["body"] == chinese
    assert (
        sender.payload(voice_job(duration, direct_chat=False), "Team", True, None)["body"]
        == f"Alice: {english}"
    )
    # Like a video's push: no media URL for the push service to see.
    assert "/media/" not in str(english_payload) + str(chinese_payload)
    assert sender.payload(job, None, False, "zh-CN")["body"] == "新消息"  # private previews


def test_a_voice_message_is_pushed_in_the_recipients_language(app, push, world):
    clients, _, conversation_id = world
    alice, bob = clients["alice"], clients["bob"]
    assert bob.patch("/api/v1/auth/me", json={"locale": "zh-CN"}).status_code == 200
    subscribed(bob, push)
    send_voice(app, alice, conversation_id, seconds=3.2)
    settle(app)
    [delivered] = push.received()
    assert delivered.payload == {
        "conversation_id": conversation_id,
        "title": "Alice",
        "body": "[语音] 3″",
        "tag": f"conversation-{conversation_id}",
        "url": f"/#/chat/{conversation_id}",
    }


# --- search by type ----------------------------------------------------------------------------


def search(client, status: int = 200, **params) -> dict:
    response = client.get(SEARCH, query_string=params)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def seqs(result: dict) -> list[tuple[int, int]]:
    return [(hit["message"]["conversation_id"], hit["message"]["seq"]) for hit in result["hits"]]


@pytest.fixture
def library(app, world):
    """Alice and Bob's chat: a text, Alice's voice (3 s), a photo, Bob's voice (5 s), a file.
    A group of Alice and Bob: Alice's voice before Carol joins, and one after."""
    clients, ids, direct = world
    alice, bob = clients["alice"], clients["bob"]
    photo = stored_upload(
        app, ids["alice"], image_bytes("PNG", (60, 40)), "image", "image/png", "png", width=60, height=40
    )
    notes = stored_upload(
        app, ids["alice"], b"meeting notes\n", "file", "text/plain", "txt", original_name="notes.txt"
    )
    sent = {
        "text": send(alice, direct, text("hello")),
        "alice_voice": send_voice(app, alice, direct, 3.0),
        "photo": send(alice, direct, {"type": "img", "upload_id": photo}),
        "bob_voice": send_voice(app, bob, direct, 5.0),
        "file": send(alice, direct, {"type": "file", "upload_id": notes}),
    }
    created = alice.post("/api/v1/groups", json={"name": "Choir", "member_ids": [ids["bob"]]})
    group = created.get_json()["group"]
    sent["early_voice"] = send_voice(app, alice, group["conversation_id"], 2.0)
    invited = alice.post(f"/api/v1/groups/{group['id']}/members", json={"user_ids": [ids["carol"]]})
    assert invited.status_code == 200, invited.get_json()
    sent["late_voice"] = send_voice(app, alice, group["conversation_id"], 4.0)
    return (
        clients,
        direct,
        group["conversation_id"],
        {name: (m["conversation_id"], m["seq"]) for name, m in sent.items()},
    )


def test_an_empty_query_with_a_type_lists_that_types_messages_newest_first(app, library):
    clients, direct, group, at = library
    alice, bob, carol = clients["alice"], clients["bob"], clients["carol"]

    voices = search(alice, q="", type="audio")
    assert seqs(voices) == [at["late_voice"], at["early_voice"], at["bob_voice"], at["alice_voice"]]
    assert (voices["next"], voices["partial"]) == (None, False)
    first = voices["hits"][0]
    assert first["snippet"] is None  # nothing was matched
    assert first["message"]["body"]["type"] == "audio" and first["message"]["body"][
        "duration"
    ] == pytest.approx(4.0, abs=0.1)
    assert first["conversation"] == {"id": group, "kind": "group", "name": "Choir", "avatar_url": None}
    # Each reader's own `played` flag: their own voice messages are played.
    assert [hit["message"]["played"] for hit in voices["hits"]] == [True, True, False, True]
    assert [hit["message"]["played"] for hit in search(bob, type="audio")["hits"]] == [
        False,
        False,
        True,
        False,
    ]

    assert seqs(search(alice, type="audio", conversation_id=direct)) == [at["bob_voice"], at["alice_voice"]]
    assert seqs(search(alice, type="audio", sender_id=user_id_of(bob))) == [at["bob_voice"]]
    assert seqs(search(alice, type="img,video")) == [at["photo"]]
    assert seqs(search(alice, type="file")) == [at["file"]]
    assert seqs(search(alice, q="  ", type="txt")) == [at["text"]]
    # Carol sees the group from when she joined, and nothing of Alice and Bob's chat.
    assert seqs(search(carol, type="audio")) == [at["late_voice"]]
    assert search(carol, 404, type="audio", conversation_id=direct)["error"]["code"] == "not_found"
    assert search(clients["erin"], type="audio,img,file,txt")["hits"] == []


def test_a_listing_pages_by_cursor(app, library):
    clients, _, _, at = library
    pages, cursor = [], None
    while True:
        page = search(clients["alice"], type="audio", limit=1, **({"cursor": cursor} if cursor else {}))
        pages += seqs(page)
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == [at["late_voice"], at["early_voice"], at["bob_voice"], at["alice_voice"]]


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [("file", ["file"]), ("audio", ["late_voice", "early_voice", "bob_voice", "alice_voice"])],
)
def test_a_listing_looks_at_a_bounded_number_of_messages_a_request(
    app, library, monkeypatch, kinds, expected
):
    """A type that is rare in a long history: each request looks at the newest LIST_SCAN visible
    messages past the cursor, says `partial` when that bound cut it short, and `next` continues
    below the oldest it looked at, so the pages together are the whole listing."""
    from app.search import messages

    clients, _, _, at = library
    monkeypatch.setattr(messages, "LIST_SCAN", 2)
    pages, cursor = [], None
    while True:
        page = search(clients["alice"], type=kinds, limit=10, **({"cursor": cursor} if cursor else {}))
        pages.append(page)
        cursor = page["next"]
        if cursor is None:
            break
    assert [hit for page in pages for hit in seqs(page)] == [at[name] for name in expected]
    assert all(len(page["hits"]) <= 2 for page in pages)
    assert all(page["partial"] for page in pages[:-1]) and not pages[-1]["partial"]
    if kinds == "file":  # older than the group's messages: the first, bounded, request finds none
        assert pages[0]["hits"] == [] and pages[0]["next"] is not None
    monkeypatch.setattr(messages, "LIST_SCAN", 10_000)
    whole = search(clients["alice"], type=kinds, limit=10)
    assert (seqs(whole), whole["partial"], whole["next"]) == ([at[name] for name in expected], False, None)


def test_a_listing_leaves_out_hidden_and_recalled_messages(app, library):
    clients, direct, group, at = library
    alice, bob = clients["alice"], clients["bob"]
    hidden = bob.post(f"/api/v1/conversations/{direct}/messages/hide", json={"seqs": [at["alice_voice"][1]]})
    assert hidden.status_code == 200, hidden.get_json()
    recalled = alice.post(f"/api/v1/conversations/{group}/messages/{at['late_voice'][1]}/recall", json={})
    assert recalled.status_code == 200, recalled.get_json()

    assert seqs(search(bob, type="audio")) == [at["early_voice"], at["bob_voice"]]
    assert seqs(search(alice, type="audio")) == [at["early_voice"], at["bob_voice"], at["alice_voice"]]


def test_a_text_query_with_a_type_without_text_is_refused_and_changes_nothing(app, library):
    clients, direct, _, _ = library
    alice = clients["alice"]
    before = state(app)
    cases = [
        ({"q": "hello", "type": "audio"}, "invalid_input"),
        ({"q": "hello", "type": "txt,img"}, "invalid_input"),
        ({"q": "", "type": "system"}, "invalid_input"),
        ({"q": "", "type": "audio,bogus"}, "invalid_input"),
        ({"q": "", "type": ","}, "invalid_input"),
        ({"q": ""}, "invalid_query"),
        ({"q": "", "type": "audio", "cursor": "x"}, "invalid_cursor"),
    ]
    for params, code in cases:
        response = alice.get(SEARCH, query_string=params)
        assert (response.status_code, response.get_json()["error"]["code"]) == (400, code), params
    assert "type" in alice.get(SEARCH, query_string=cases[0][0]).get_json()["error"]["fields"]
    assert state(app) == before
    # A text query keeps its own answer, types with text included.
    assert [hit["message"]["seq"] for hit in search(alice, q="hello", type="txt,file")["hits"]] == [1]
    assert search(alice, q="notes", type="file")["hits"][0]["snippet"]["text"] == "notes.txt"


# --- the admin console -------------------------------------------------------------------------


def test_the_consoles_message_list_says_voice_and_its_length_and_escapes_names(app, world, make_user, login):
    clients, ids, direct = world
    make_user("root", is_admin=True)
    admin = login("root")
    voice = send_voice(app, clients["alice"], direct, 7.4)
    nasty = "<img src=x onerror=alert(1)>.txt"
    upload_id = stored_upload(app, ids["alice"], b"x", "file", "text/plain", "txt", original_name=nasty)
    send(clients["alice"], direct, {"type": "file", "upload_id": upload_id})
    send(clients["alice"], direct, {"type": "loc", "title": "Harbour <b>", "lat": 1.0, "lng": 2.0})

    listed = admin.get("/admin/message/").get_data(as_text=True)
    assert "[Voice] 0:07" in listed  # the push preview's length (app/voice_text.py)
    assert "[File] &lt;img src=x onerror=alert(1)&gt;.txt" in listed
    assert "[Location] Harbour &lt;b&gt;" in listed
    assert "<img src=x" not in listed and "Harbour <b>" not in listed
    assert "/media/" not in listed  # no link to the recording
    details = admin.get(f"/admin/message/details/?id={voice['id']}").get_data(as_text=True)
    assert "[Voice] 0:07" in details
    with app.app_context():
        db.session.execute(update(User).where(User.username == "root").values(locale="zh-CN"))
        db.session.commit()
    assert "[语音] 7″" in admin.get("/admin/message/").get_data(as_text=True)


@pytest.mark.parametrize(
    ("body", "english", "chinese"),
    [
        ({"type": "video", "duration": None}, "[Video]", "[视频]"),  # a video FFmpeg could not time
        ({"type": "video", "duration": 6.5}, "[Video] 7 s", "[视频] 7 秒"),
        ({"type": "audio", "duration": 65.2}, "[Voice] 1:05", "[语音] 65″"),
        ({"type": "audio"}, "[Voice] 0:01", "[语音] 1″"),
    ],
)
def test_the_consoles_summary_of_a_video_or_voice_message(app, body, english, chinese):
    from app.admin.views import message_summary

    message = Message(type=body["type"], body=body)
    for language, expected in (("en", english), ("zh-CN", chinese)):
        with app.test_request_context(headers={"Accept-Language": language}):
            assert message_summary(message) == expected


# --- the robot ---------------------------------------------------------------------------------


@pytest.fixture
def robot(app):
    """The robot switched on, with nothing remembered."""
    app.extensions["parley.bot_store"].clear()
    yield
    app.extensions["parley.bot_store"].clear()


def ask_by_voice(app, client, conversation_id: int) -> dict:
    question = send_voice(app, client, conversation_id, 2.0)
    messages = wait_for_messages(client, conversation_id, question["seq"] + 1)
    [answer] = [m for m in messages if m["client_msg_id"] == f"bot-reply-{question['id']}"]
    return answer


def test_the_robot_asks_for_text_when_it_gets_a_voice_message(app, robot, make_user, login):
    make_user("alice")
    alice = login("alice")
    opened = open_bot(alice)
    conversation_id = opened["conversation_id"]

    answer = ask_by_voice(app, alice, conversation_id)
    assert answer["sender"]["id"] == opened["bot"]["id"]
    # No language chosen: both.
    assert answer["body"] == {"type": "txt", "msg": f"{bots.VOICE_REPLY['en']}\n{bots.VOICE_REPLY['zh']}"}
    assert alice.patch("/api/v1/auth/me", json={"locale": "zh-CN"}).status_code == 200
    assert ask_by_voice(app, alice, conversation_id)["body"]["msg"] == "我还听不懂语音，请打字提问。"
    assert alice.patch("/api/v1/auth/me", json={"locale": "en"}).status_code == 200
    assert (
        ask_by_voice(app, alice, conversation_id)["body"]["msg"]
        == "I can't listen to voice messages yet — please type your question."
    )


def test_with_unit_a_voice_message_is_answered_without_asking_unit(app, robot, unit, make_user, login):
    make_user("alice")
    alice = login("alice")
    assert alice.patch("/api/v1/auth/me", json={"locale": "en"}).status_code == 200
    conversation_id = open_bot(alice)["conversation_id"]

    assert ask_by_voice(app, alice, conversation_id)["body"]["msg"] == bots.VOICE_REPLY["en"]
    assert unit.calls("token") == [] and unit.calls("chat") == []
    with app.app_context():
        assert bots.status()["last_failure"] is None


def test_in_a_group_the_robot_answers_a_voice_message_that_mentions_it(
    app, robot, make_user, login, befriend
):
    owner_id, member_id = make_user("owner"), make_user("member")
    befriend(owner_id, member_id)
    owner, member = login("owner"), login("member")
    bot_id = open_bot(owner)["bot"]["id"]
    created = owner.post("/api/v1/groups", json={"name": "Team", "member_ids": [member_id, bot_id]})
    conversation_id = created.get_json()["group"]["conversation_id"]
    assert member.patch("/api/v1/auth/me", json={"locale": "zh-CN"}).status_code == 200

    send_voice(app, member, conversation_id, 2.0)  # not to the robot
    question = send_voice(app, member, conversation_id, 2.0, mentions=[bot_id])
    messages = wait_for_messages(member, conversation_id, question["seq"] + 1)

    answers = [m for m in messages if m["sender"] and m["sender"]["id"] == bot_id]
    assert [(m["client_msg_id"], m["body"]["msg"]) for m in answers] == [
        (f"bot-reply-{question['id']}", bots.VOICE_REPLY["zh"])
    ]


# --- replies, forward and recall ---------------------------------------------------------------


def test_a_reply_to_a_voice_message_quotes_its_type_without_text(app, world):
    clients, ids, direct = world
    voice = send_voice(app, clients["alice"], direct, 7.0)
    reply = send(clients["bob"], direct, text("on my way"), reply_to=voice["seq"])
    assert reply["reply"] == {
        "seq": voice["seq"],
        "sender": {"id": ids["alice"], "nickname": "Alice"},
        "type": "audio",
        "text": "",
        "recalled": False,
    }


def test_a_forwarded_voice_message_is_heard_in_its_target_and_a_recall_stops_it_as_for_video(app, world):
    clients, ids, direct = world
    alice, bob, carol, erin = (clients[name] for name in ("alice", "bob", "carol", "erin"))
    to_carol = alice.post("/api/v1/conversations", json={"user_id": ids["carol"]}).get_json()["conversation"][
        "id"
    ]
    voice = send_voice(app, alice, direct, 7.0)
    video_id = stored_upload(
        app,
        ids["alice"],
        media_samples.video(1.0, "mp4"),
        "video",
        "video/mp4",
        "mp4",
        width=64,
        height=48,
        duration=1.0,
    )
    video = send(alice, direct, {"type": "video", "upload_id": video_id})
    urls = {"audio": voice["body"]["url"], "video": video["body"]["url"]}
    assert fetch(carol, urls["audio"]).status_code == 403  # not in the chat it was sent in

    forwarded = alice.post(
        "/api/v1/messages/forward",
        json={
            "conversation_id": direct,
            "seqs": [voice["seq"]],
            "mode": "separate",
            "targets": [{"conversation_id": to_carol, "client_msg_id": "fwd-voice-1"}],
        },
    )
    assert forwarded.status_code == 200, forwarded.get_json()
    [result] = forwarded.get_json()["results"]
    [copy] = result["messages"]
    assert copy["body"] == voice["body"] and copy["forwarded"] is True
    heard = fetch(carol, urls["audio"], headers={"Range": "bytes=0-9"})
    assert (heard.status_code, heard.mimetype) == (206, "audio/webm")
    assert fetch(erin, urls["audio"]).status_code == 403

    for message in (voice, video):
        recalled = alice.post(f"/api/v1/conversations/{direct}/messages/{message['seq']}/recall", json={})
        assert recalled.status_code == 200, recalled.get_json()
        body = recalled.get_json()["message"]["body"]
        assert body["recalled"] is True and "url" not in body
    page = bob.get(f"/api/v1/conversations/{direct}/messages").get_json()["messages"]
    assert "/media/" not in str(page)
    # As for a video: the others no longer get it, its sender does, and the forwarded copy keeps it.
    for kind in ("audio", "video"):
        assert fetch(bob, urls[kind]).status_code == 403, kind
        assert fetch(alice, urls[kind]).status_code == 200, kind
    assert fetch(carol, urls["audio"]).status_code == 200


# --- the server API ----------------------------------------------------------------------------


def test_an_integrator_sends_a_users_voice_recording_as_that_user(app, client, world, api_key):
    clients, ids, direct = world
    headers = api_key("messages")
    own = voice_upload(clients["alice"], 4.0)
    response = client.post(
        "/api/server/v1/messages",
        json={
            "from_user_id": ids["alice"],
            "to_user_id": ids["bob"],
            "client_msg_id": new_client_msg_id(),
            "body": {"type": "audio", "upload_id": own},
        },
        headers=headers,
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()["message"]["body"]
    assert (body["type"], body["mime"]) == ("audio", "audio/webm")
    assert body["duration"] == pytest.approx(4.0, abs=0.1)
    [received] = clients["bob"].get(f"/api/v1/conversations/{direct}/messages").get_json()["messages"]
    assert received["body"] == body and received["played"] is False

    before = state(app)
    theirs = voice_upload(clients["bob"], 4.0)
    refused = client.post(
        "/api/server/v1/messages",
        json={
            "from_user_id": ids["alice"],
            "to_user_id": ids["bob"],
            "client_msg_id": new_client_msg_id(),
            "body": {"type": "audio", "upload_id": theirs},
        },
        headers=headers,
    )
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (403, "not_your_upload")
    assert state(app) == before
