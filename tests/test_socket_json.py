"""socket.io packets are written and read with orjson (app/jsonpack.py): what a client parses
from them is exactly what the standard module gave, and what orjson refuses still goes through
the standard module's rules (so bad input keeps its error ack)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import engineio.packet
import pytest
import socketio.packet
from sqlalchemy import func, select

from app import jsonpack
from app.extensions import db
from app.extensions import socketio as server
from app.models import Message
from tests.chat_helpers import connect, new_client_msg_id

PAYLOAD = {
    "text": "你好，世界 — 我们明天见 😀👍🏽🇨🇳 and plain ASCII",
    "nested": {"list": [1, -2, 3.5, True, False, None, "二"], "deep": {"deeper": [{"emoji": "🎉"}, []]}},
    "empty": {},
    "control": 'tab\tnewline\nquote"backslash\\ nul-free',
    "big": 2**63 - 1,
}


def standard(obj) -> str:
    """The standard module writing UTF-8 instead of escapes: what a client parses, byte for byte."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def test_the_server_encodes_and_decodes_packets_with_jsonpack(app):
    assert server.server.packet_class.json is jsonpack
    assert socketio.packet.Packet.json is jsonpack
    assert engineio.packet.Packet.json is jsonpack


def test_an_event_packet_reads_back_as_the_standard_module_wrote_it():
    packet = socketio.packet.Packet(socketio.packet.EVENT, data=["message:new", PAYLOAD], id=7)
    encoded = packet.encode()
    assert encoded == "27" + standard(["message:new", PAYLOAD])
    # A client parses the JSON after the packet type and id: the very values we sent.
    assert json.loads(encoded[2:]) == ["message:new", PAYLOAD]
    assert json.loads(encoded[2:]) == json.loads(json.dumps(["message:new", PAYLOAD]))
    # And the server reads back what a client writes with the standard module's escapes.
    escaped = "2" + json.dumps(["message:send", PAYLOAD])
    assert "\\u4f60" in escaped
    assert socketio.packet.Packet(encoded_packet=escaped).data == ["message:send", PAYLOAD]


def test_keys_are_made_strings_as_the_standard_module_makes_them():
    obj = {7: "seven", 2.5: "two and a half", True: "yes", None: "nothing"}
    assert json.loads(jsonpack.dumps(obj)) == json.loads(json.dumps(obj))


@dataclass
class Point:
    x: int


@pytest.mark.parametrize("value", [datetime(2026, 1, 1, tzinfo=UTC), Point(1), object()])
def test_what_the_standard_module_refused_to_encode_is_still_refused(value):
    with pytest.raises(TypeError):
        json.dumps({"at": value})
    with pytest.raises(TypeError):
        jsonpack.dumps({"at": value})


def test_what_orjson_refuses_is_encoded_and_decoded_by_the_standard_rules():
    # Beyond 64 bits and unpaired surrogates: written as the standard module writes them.
    assert jsonpack.dumps({"n": 2**70, "s": "\ud800"}) == '{"n":1180591620717411303424,"s":"\\ud800"}'
    assert jsonpack.loads('{"s":"\\ud800"}') == {"s": "\ud800"}
    assert jsonpack.loads('{"x":NaN}')["x"] != jsonpack.loads('{"x":NaN}')["x"]  # NaN, as before
    assert jsonpack.loads("[1e400]") == [float("inf")]
    # Integers up to 64 bits are read exactly; beyond, orjson reads a float (as JavaScript does).
    assert jsonpack.loads(f"[{2**64 - 1},{-(2**63)},123]") == [2**64 - 1, -(2**63), 123]
    assert jsonpack.loads(f"[{2**70}]") == [float(2**70)]
    # engine.io's guard against huge integers still holds where orjson gives up.
    with pytest.raises(ValueError):
        jsonpack.loads("[" + "9" * 400 + "]")
    with pytest.raises(ValueError):
        jsonpack.loads('{"unterminated": ')


@pytest.fixture
def alice_and_bob(app, make_user, login, befriend):
    befriend(make_user("alice"), make_user("bob"))
    alice = connect(app, login("alice"))
    bob = connect(app, login("bob"))
    answer = alice.http.post("/api/v1/conversations", json={"user_id": bob.user_id})
    conversation_id = answer.get_json()["conversation"]["id"]
    alice.received()
    bob.received()
    return alice, bob, conversation_id


def test_chinese_and_emoji_arrive_intact_through_the_socket(app, alice_and_bob):
    alice, bob, conversation_id = alice_and_bob
    text = PAYLOAD["text"]
    ack = alice.send(conversation_id, text)
    assert ack["ok"] is True and ack["message"]["body"]["msg"] == text
    [delivered] = bob.received("message:new")
    assert delivered["body"]["msg"] == text
    with app.app_context():
        assert db.session.scalar(select(Message.body)) == {"type": "txt", "msg": text}


def test_an_escaped_unpaired_surrogate_gets_its_error_ack_and_writes_nothing(app, alice_and_bob):
    alice, _, conversation_id = alice_and_bob
    # The test client writes the surrogate as the escape `\ud800`, which orjson refuses to read.
    ack = alice.send(conversation_id, "a\ud800b", client_msg_id=new_client_msg_id())
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_input"
    with app.app_context():
        assert db.session.scalar(select(func.count(Message.id))) == 0


@pytest.mark.parametrize("number", [2**64, 2**70, -(2**63) - 1, 10**30])
def test_integers_beyond_64_bits_in_an_event_are_refused_as_before(app, alice_and_bob, number):
    alice, _, conversation_id = alice_and_bob
    for name, data in (
        (
            "message:send",
            {
                "conversation_id": number,
                "client_msg_id": new_client_msg_id(),
                "body": {"type": "txt", "msg": "x"},
            },
        ),
        ("conversation:read", {"conversation_id": conversation_id, "seq": number}),
        ("typing", {"conversation_id": number}),
    ):
        ack = alice.emit(name, data)
        assert ack["ok"] is False and ack["error"]["code"] == "invalid_input", (name, ack)
    with app.app_context():
        assert db.session.scalar(select(func.count(Message.id))) == 0
