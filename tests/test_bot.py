"""The robot: its account and conversations, background replies through Baidu UNIT (against a
local fake speaking Baidu's shapes) or the built-in rules, failures turned into a polite
fallback, groups, roaming, and a dead provider that delays nobody (on a live server)."""

from __future__ import annotations

import time
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone

import gevent
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.bots import service, state
from app.bots.base import FALLBACK
from app.bots.builtin import BuiltinProvider, load_rules, parse_rules
from app.bots.state import MemoryStore, RedisStore
from app.bots.unit import UnitProvider
from app.extensions import db
from app.models import Conversation, Message, User
from config import Config, ConfigError
from tests import fake_unit
from tests.chat_helpers import connect, new_client_msg_id
from tests.conftest import PASSWORD, LiveServer, free_port, server_env
from tests.fake_unit import FakeUnit
from tests.socket_client import Device

WAIT_SECONDS = 10.0


@pytest.fixture(scope="module")
def fake():
    server = FakeUnit().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_robot_state(app):
    """Each test starts with no cached token, no UNIT sessions and the robot switched on."""
    app.extensions["parley.bot_store"].clear()
    yield
    app.extensions["parley.bot_store"].clear()


@pytest.fixture
def unit(app, fake, monkeypatch):
    """The application talks to the fake UNIT (the provider reads its settings per reply)."""
    fake.reset()
    monkeypatch.setitem(app.config, "UNIT_API_KEY", fake_unit.API_KEY)
    monkeypatch.setitem(app.config, "UNIT_SECRET_KEY", fake_unit.SECRET_KEY)
    monkeypatch.setitem(app.config, "UNIT_SERVICE_ID", fake_unit.SERVICE_ID)
    monkeypatch.setitem(app.config, "UNIT_BASE_URL", fake.url)
    return fake


def code_of(response) -> str | None:
    body = response.get_json(silent=True)
    return body["error"]["code"] if body and "error" in body else None


def open_bot(client) -> dict:
    response = client.get("/api/v1/bot")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def send(client, conversation_id: int, text: str) -> dict:
    response = client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"client_msg_id": new_client_msg_id(), "body": {"type": "txt", "msg": text}},
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["message"]


def history(client, conversation_id: int) -> list[dict]:
    response = client.get(f"/api/v1/conversations/{conversation_id}/messages")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["messages"]


def wait_for_messages(client, conversation_id: int, count: int) -> list[dict]:
    """Yield to the robot's greenlets until the conversation holds `count` messages."""
    deadline = time.monotonic() + WAIT_SECONDS
    while len(messages := history(client, conversation_id)) < count:
        assert time.monotonic() < deadline, f"only {len(messages)} of {count} messages: {messages}"
        gevent.sleep(0.02)
    return messages


def ask(client, conversation_id: int, text: str) -> dict:
    """Send `text` and return the robot's answer to it."""
    question = send(client, conversation_id, text)
    messages = wait_for_messages(client, conversation_id, question["seq"] + 1)
    [answer] = [m for m in messages if m["client_msg_id"] == f"bot-reply-{question['id']}"]
    return answer


def bot_message_count(app) -> int:
    with app.app_context():
        return db.session.scalar(
            select(func.count(Message.id)).join(User, User.id == Message.sender_id).where(User.is_bot)
        )


# --- the account and its conversations ------------------------------------------------------


def test_every_user_gets_their_own_conversation_with_one_robot(app, make_user, login):
    make_user("alice"), make_user("bob")
    alice, bob = login("alice"), login("bob")

    first = open_bot(alice)
    again = open_bot(alice)
    bobs = open_bot(bob)

    bot = first["bot"]
    assert bot["is_bot"] is True
    assert bot["nickname"] == "Parley 助手"
    assert again["bot"] == bobs["bot"] == bot
    assert again["conversation_id"] == first["conversation_id"] == first["conversation"]["id"]
    assert bobs["conversation_id"] != first["conversation_id"]
    listed = alice.get("/api/v1/conversations").get_json()["conversations"]
    [summary] = [item for item in listed if item["id"] == first["conversation_id"]]
    assert summary["peer"]["id"] == bot["id"]
    assert summary["online"] is True
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id)).where(User.is_bot)) == 1


def test_the_robot_route_needs_a_session(client):
    response = client.get("/api/v1/bot")
    assert response.status_code == 401
    assert code_of(response) == "unauthenticated"


def test_the_robot_needs_no_friendship_for_direct_messages(make_user, login):
    make_user("alice")
    alice = login("alice")
    bot_id = open_bot(alice)["bot"]["id"]

    response = alice.post("/api/v1/conversations", json={"user_id": bot_id})

    assert response.status_code == 200
    assert response.get_json()["conversation"]["peer"]["id"] == bot_id


def test_a_concurrent_first_use_creates_the_robot_once(app, make_user):
    """Two processes that both found no robot: the unique username lets only one row in."""
    with app.app_context():
        bot = service.get_bot()
        db.session.add(User(username=service.BOT_USERNAME, username_key=service.BOT_USERNAME, nickname="x"))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()
        assert service.get_bot().id == bot.id
        assert db.session.scalar(select(func.count(User.id)).where(User.is_bot)) == 1


def test_nobody_can_register_the_robots_username(client):
    response = client.post(
        "/api/v1/auth/register", json={"username": service.BOT_USERNAME, "password": PASSWORD}
    )
    assert response.status_code == 400
    assert code_of(response) == "invalid_input"


def test_the_robots_nickname_follows_the_configuration(app, make_user, login, monkeypatch):
    make_user("alice")
    alice = login("alice")
    open_bot(alice)

    monkeypatch.setitem(app.config, "BOT_NICKNAME", "Parley Assistant")

    assert open_bot(alice)["bot"]["nickname"] == "Parley Assistant"


def test_the_robot_is_online_while_switched_on_and_silent_when_off(app, make_user, login):
    make_user("alice")
    alice = login("alice")
    opened = open_bot(alice)
    bot_id, conversation_id = opened["bot"]["id"], opened["conversation_id"]

    def online() -> bool:
        [entry] = alice.get(f"/api/v1/presence?user_ids={bot_id}").get_json()["presence"]
        return entry["online"]

    assert online() is True
    with app.app_context():
        assert service.set_enabled(False)["enabled"] is False
    assert online() is False
    assert open_bot(alice)["conversation"]["online"] is False
    unanswered = send(alice, conversation_id, "hello?")

    with app.app_context():
        assert service.set_enabled(True)["enabled"] is True
    answered = ask(alice, conversation_id, "hello again")

    assert online() is True
    assert bot_message_count(app) == 1
    assert answered["client_msg_id"] != f"bot-reply-{unanswered['id']}"


def test_status_names_the_provider_for_the_admin_console(app, unit, monkeypatch):
    with app.app_context():
        assert service.status() == {
            "enabled": True,
            "provider": "unit",
            "reply_timeout_seconds": 5,
            "last_failure": None,
        }
        monkeypatch.setitem(app.config, "UNIT_SERVICE_ID", None)
        assert service.status()["provider"] == "builtin"


# --- answering through Baidu UNIT ------------------------------------------------------------


def test_unit_answers_in_the_background_while_the_robot_shows_typing(app, unit, make_user, login):
    make_user("alice")
    phone = connect(app, login("alice"))
    opened = open_bot(phone.http)
    bot_id, conversation_id = opened["bot"]["id"], opened["conversation_id"]
    phone.received()

    ack = phone.send(conversation_id, "明天北京天气怎么样")

    assert ack["ok"] is True
    assert history(phone.http, conversation_id) == [ack["message"]]  # the ack did not wait for it
    messages = wait_for_messages(phone.http, conversation_id, 2)
    answer = messages[1]
    assert answer["sender"]["id"] == bot_id
    assert answer["body"] == {"type": "txt", "msg": "UNIT heard: 明天北京天气怎么样"}
    assert answer["client_msg_id"] == f"bot-reply-{ack['message']['id']}"
    received = phone.socket.get_received()
    names = [event["name"] for event in received]
    assert bot_id in [event["user_id"] for event in phone_typing(received)]
    assert names.index("typing") < max(i for i, name in enumerate(names) if name == "message:new")
    [token_call] = unit.calls("token")
    assert token_call.params == {
        "grant_type": "client_credentials",
        "client_id": fake_unit.API_KEY,
        "client_secret": fake_unit.SECRET_KEY,
    }
    [chat_call] = unit.calls("chat")
    assert chat_call.params["access_token"]
    assert chat_call.body["version"] == "3.0"
    assert chat_call.body["service_id"] == fake_unit.SERVICE_ID
    assert chat_call.body["request"]["query"] == "明天北京天气怎么样"
    with app.app_context():
        assert service.status()["last_failure"] is None


def phone_typing(received: list[dict]) -> list[dict]:
    return [event["args"][0] for event in received if event["name"] == "typing"]


def test_each_user_keeps_their_own_unit_dialogue(app, unit, make_user, login):
    make_user("alice"), make_user("bob")
    alice, bob = login("alice"), login("bob")
    alice_chat, bob_chat = open_bot(alice)["conversation_id"], open_bot(bob)["conversation_id"]

    ask(alice, alice_chat, "我想订机票")
    ask(bob, bob_chat, "hello")
    ask(alice, alice_chat, "去上海")

    alice_first, bob_first, alice_second = (call.body for call in unit.calls("chat"))
    assert alice_first["session_id"] == bob_first["session_id"] == ""  # a first turn starts a dialogue
    alice_session = f"service-{fake_unit.SERVICE_ID}-session-1"
    assert alice_second["session_id"] == alice_session
    assert alice_first["request"]["terminal_id"] == alice_second["request"]["terminal_id"]
    assert alice_first["request"]["terminal_id"] != bob_first["request"]["terminal_id"]
    log_ids = [body["log_id"] for body in (alice_first, bob_first, alice_second)]
    assert len(set(log_ids)) == 3
    assert len(unit.calls("token")) == 1  # one token, cached, for every reply
    ask(bob, bob_chat, "again")
    assert unit.calls("chat")[-1].body["session_id"] == f"service-{fake_unit.SERVICE_ID}-session-2"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def provider_for(fake: FakeUnit, store) -> UnitProvider:
    return UnitProvider(fake.url, fake_unit.API_KEY, fake_unit.SECRET_KEY, fake_unit.SERVICE_ID, store, 5)


def user(user_id: int) -> User:
    return User(id=user_id, username=f"user{user_id}", nickname=f"User {user_id}")


def test_the_token_is_cached_until_shortly_before_it_expires(fake):
    fake.reset()
    fake.expires_in = 1000  # refreshed 100 s early: a tenth of its life
    clock = Clock()
    provider = provider_for(fake, MemoryStore(clock))
    conversation = Conversation(id=1, kind="direct")

    provider.reply(user(1), conversation, "one")
    clock.now += 899
    provider.reply(user(1), conversation, "two")
    assert len(fake.calls("token")) == 1
    clock.now += 2
    provider.reply(user(1), conversation, "three")

    tokens = [call.params["access_token"] for call in fake.calls("chat")]
    assert len(fake.calls("token")) == 2
    assert tokens[0] == tokens[1] != tokens[2]


def test_an_expired_token_error_fetches_a_new_token_and_asks_again(fake):
    fake.reset()
    provider = provider_for(fake, MemoryStore())
    conversation = Conversation(id=1, kind="direct")
    provider.reply(user(1), conversation, "first")

    fake.expire_tokens()  # Baidu revoked it before its time: chat answers error 111
    answer = provider.reply(user(1), conversation, "second")

    assert answer == "UNIT heard: second"
    assert len(fake.calls("token")) == 2
    assert len(fake.calls("chat")) == 3


def test_an_invalid_token_error_twice_gives_up_after_one_new_token(app, unit, make_user, login):
    make_user("alice")
    alice = login("alice")
    conversation_id = open_bot(alice)["conversation_id"]
    unit.chat_errors = [110, 110]

    answer = ask(alice, conversation_id, "hello")

    assert answer["body"]["msg"] == FALLBACK["en"]
    assert len(unit.calls("token")) == 2
    assert len(unit.calls("chat")) == 2


def test_every_process_shares_one_token_and_the_users_dialogue_through_redis(fake, redis_url):
    fake.reset()
    prefix = f"parley:test-bot:{time.monotonic_ns()}"
    first, second = RedisStore(redis_url, prefix), RedisStore(redis_url, prefix)
    try:
        one, other = provider_for(fake, first), provider_for(fake, second)
        conversation = Conversation(id=1, kind="direct")

        one.reply(user(7), conversation, "我想订机票")
        other.reply(user(7), conversation, "去上海")

        assert len(fake.calls("token")) == 1
        first_turn, second_turn = (call.body for call in fake.calls("chat"))
        assert first_turn["session_id"] == ""
        assert second_turn["session_id"].startswith(f"service-{fake_unit.SERVICE_ID}-session-")
    finally:
        first.clear()


@pytest.mark.parametrize("code", [4, 17, 18, 19, 6, 282000])
def test_unit_error_codes_become_the_polite_fallback(app, unit, make_user, login, code):
    make_user("alice")
    alice = login("alice")
    conversation_id = open_bot(alice)["conversation_id"]
    unit.chat_errors = [code]

    answer = ask(alice, conversation_id, "你好")

    assert answer["body"]["msg"] == FALLBACK["zh"]
    with app.app_context():
        failure = service.status()["last_failure"]
    assert failure["provider"] == "unit"
    assert str(code) in failure["reason"]
    assert len(unit.calls("chat")) == 1  # only token errors are worth another try


@pytest.mark.parametrize("malformed", ["not_json", "no_answer"])
def test_a_malformed_unit_answer_becomes_the_fallback(app, unit, make_user, login, malformed):
    make_user("alice")
    alice = login("alice")
    conversation_id = open_bot(alice)["conversation_id"]
    unit.malformed = malformed

    answer = ask(alice, conversation_id, "hello")

    assert answer["body"]["msg"] == FALLBACK["en"]
    with app.app_context():
        assert service.status()["last_failure"]["provider"] == "unit"


def test_a_refused_token_request_becomes_the_fallback_without_a_chat_call(
    app, unit, make_user, login, monkeypatch
):
    monkeypatch.setitem(app.config, "UNIT_SECRET_KEY", "not-the-secret")
    make_user("alice")
    alice = login("alice")
    conversation_id = open_bot(alice)["conversation_id"]

    answer = ask(alice, conversation_id, "hello")

    assert answer["body"]["msg"] == FALLBACK["en"]
    assert unit.calls("chat") == []
    with app.app_context():
        assert "Client authentication failed" in service.status()["last_failure"]["reason"]


def test_an_unreachable_unit_becomes_the_fallback(app, unit, make_user, login, monkeypatch):
    monkeypatch.setitem(app.config, "UNIT_BASE_URL", f"http://127.0.0.1:{free_port()}")
    make_user("alice")
    alice = login("alice")
    conversation_id = open_bot(alice)["conversation_id"]

    assert ask(alice, conversation_id, "hello")["body"]["msg"] == FALLBACK["en"]


def test_answering_the_same_message_twice_stores_one_reply(app, unit, make_user, login):
    make_user("alice")
    alice = login("alice")
    opened = open_bot(alice)
    question = send(alice, opened["conversation_id"], "hello")
    first = wait_for_messages(alice, opened["conversation_id"], 2)[1]
    job = service.ReplyJob(
        question["id"], opened["conversation_id"], question["sender"]["id"], opened["bot"]["id"], "hello"
    )

    with app.app_context():
        again = service.answer(job)

    assert again["id"] == first["id"]
    assert bot_message_count(app) == 1


# --- the built-in provider --------------------------------------------------------------------

MONDAY = datetime(2024, 5, 6, 13, 45, tzinfo=timezone(timedelta(hours=8)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("你好", "你好，Alice！我是Parley 助手。"),
        ("hello there", "Hello, Alice! I'm Parley 助手."),
        ("现在几点了？", "现在是 2024-05-06 星期一 13:45（服务器时间，UTC+08:00）。"),
        ("What time is it?", "It is 13:45 on Monday, 2024-05-06 (server time, UTC+08:00)."),
        ("帮助", "我是Parley 助手，可以回答这些问题"),
        ("help", "I'm Parley 助手. Ask me about"),
        ("怎么加好友", "加好友：在“找人”里"),
        ("How do I create a group?", "To create a group"),
        ("谢谢", "不客气，Alice！"),
        ("qwerty", "I don't know how to answer that yet."),
        ("随便聊聊", "这个我还不会回答。"),
    ],
)
def test_the_builtin_rules_answer_in_chinese_and_english(text, expected):
    provider = BuiltinProvider("Parley 助手", clock=lambda: MONDAY)
    answer = provider.reply(User(id=1, nickname="Alice"), Conversation(id=1, kind="direct"), text)
    assert answer.startswith(expected)


def test_every_shipped_rule_answers_in_both_languages():
    rules = load_rules()
    assert [rule.name for rule in rules.rules][-1] == "greeting"  # specific questions first
    for rule in rules.rules:
        assert set(rule.reply) == {"zh", "en"}


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"rules": [{"name": "x", "patterns": ["("], "reply": {"zh": "a", "en": "b"}}]}, "bad pattern"),
        ({"rules": [{"name": "x", "patterns": ["a"], "reply": {"zh": "a"}}]}, "needs a zh and an en"),
        ({"rules": [{"name": "x", "patterns": [], "reply": {"zh": "a", "en": "b"}}]}, "list of patterns"),
        ({"rules": []}, "otherwise needs"),
    ],
)
def test_a_broken_rules_file_is_refused_with_its_mistake(document, problem):
    with pytest.raises(ValueError, match=problem):
        parse_rules(document)


def test_without_unit_the_builtin_rules_answer(app, make_user, login):
    make_user("alice")
    alice = login("alice")
    conversation_id = open_bot(alice)["conversation_id"]

    assert ask(alice, conversation_id, "你好")["body"]["msg"].startswith("你好，alice！")
    assert ask(alice, conversation_id, "thanks!")["body"]["msg"] == "You're welcome, alice!"


# --- roaming and groups ---------------------------------------------------------------------


def test_the_robots_replies_roam_to_every_device(app, make_user, login):
    make_user("alice")
    phone, laptop = connect(app, login("alice")), connect(app, login("alice"))
    opened = open_bot(phone.http)
    conversation_id = opened["conversation_id"]
    cursor = phone.http.get("/api/v1/conversations").get_json()["cursor"]
    laptop.received()

    question = phone.send(conversation_id, "hello")["message"]
    messages = wait_for_messages(phone.http, conversation_id, 2)

    answer = messages[1]
    assert answer["sender"]["id"] == opened["bot"]["id"]
    live = laptop.received("message:new")
    assert live == [question, answer]
    assert history(laptop.http, conversation_id) == [question, answer]
    synced = laptop.http.get(f"/api/v1/sync?cursor={cursor}").get_json()
    assert synced["messages"] == [question, answer]
    [summary] = synced["conversations"]
    assert summary["last_message"] == answer
    assert summary["unread"] == 1


@pytest.fixture
def team(app, make_user, login, befriend):
    """A group of an owner, an admin and a member, with the robot added by the owner."""
    ids = {name: make_user(name) for name in ("owner", "admin", "member")}
    befriend(ids["owner"], ids["admin"])
    befriend(ids["owner"], ids["member"])
    clients = {name: login(name) for name in ids}
    bot_id = open_bot(clients["owner"])["bot"]["id"]
    created = clients["owner"].post(
        "/api/v1/groups", json={"name": "Team", "member_ids": [ids["admin"], ids["member"], bot_id]}
    )
    assert created.status_code == 201, created.get_json()
    group = created.get_json()["group"]
    role = clients["owner"].put(
        f"/api/v1/groups/{group['id']}/members/{ids['admin']}/role", json={"role": "admin"}
    )
    assert role.status_code == 200
    return group, ids, clients, bot_id


def test_in_a_group_the_robot_answers_only_when_mentioned(app, team):
    group, _, clients, bot_id = team
    member = clients["member"]
    conversation_id = group["conversation_id"]
    members = member.get(f"/api/v1/groups/{group['id']}/members").get_json()["members"]
    assert next(entry for entry in members if entry["user"]["id"] == bot_id)["online"] is True

    send(member, conversation_id, "hello everyone, what time is it?")
    send(member, conversation_id, "mail me at someone@example.com")
    answer = ask(member, conversation_id, "@parley助手 几点了")

    assert answer["sender"]["id"] == bot_id
    assert answer["body"]["msg"].startswith("现在是 ")
    assert bot_message_count(app) == 1


def test_a_mention_of_the_robot_in_a_group_without_it_goes_unanswered(app, team):
    group, ids, clients, bot_id = team
    other = clients["owner"].post("/api/v1/groups", json={"name": "No robot", "member_ids": [ids["member"]]})
    other_conversation = other.get_json()["group"]["conversation_id"]

    send(clients["member"], other_conversation, "@Parley 助手 hello")
    ask(clients["member"], group["conversation_id"], f"@{service.BOT_USERNAME} hello")

    assert not [m for m in history(clients["member"], other_conversation) if from_bot(bot_id)(m)]
    assert bot_message_count(app) == 1


def test_only_owners_and_admins_add_the_robot_to_a_group(app, team, befriend):
    group, ids, clients, bot_id = team
    befriend(ids["admin"], ids["member"])
    other = clients["admin"].post("/api/v1/groups", json={"name": "Open", "member_ids": [ids["member"]]})
    other_group = other.get_json()["group"]
    assert other_group["join_policy"] == "approval"

    refused = clients["member"].post(
        f"/api/v1/groups/{other_group['id']}/members", json={"user_ids": [bot_id]}
    )
    added = clients["admin"].post(f"/api/v1/groups/{other_group['id']}/members", json={"user_ids": [bot_id]})

    assert refused.status_code == 403
    assert code_of(refused) == "forbidden"
    assert added.status_code == 200
    assert added.get_json() == {"added": [bot_id]}


def test_a_member_cannot_add_the_robot_and_nothing_changes(app, team):
    group, ids, clients, bot_id = team
    kicked = clients["owner"].delete(f"/api/v1/groups/{group['id']}/members/{bot_id}")
    assert kicked.status_code == 204
    before = clients["owner"].get(f"/api/v1/groups/{group['id']}").get_json()["group"]

    refused = clients["member"].post(f"/api/v1/groups/{group['id']}/members", json={"user_ids": [bot_id]})

    assert refused.status_code == 403
    assert code_of(refused) == "forbidden"
    assert clients["owner"].get(f"/api/v1/groups/{group['id']}").get_json()["group"] == before


def test_a_muted_group_silences_the_robot(app, team):
    group, _, clients, _ = team
    assert clients["owner"].put(f"/api/v1/groups/{group['id']}/mute", json={"muted": True}).status_code == 200
    conversation_id = group["conversation_id"]
    question = send(clients["owner"], conversation_id, "@Parley 助手 hi")
    job = service.ReplyJob(question["id"], conversation_id, question["sender"]["id"], team[3], "hi")

    with app.app_context():
        assert service.answer(job) is None

    assert bot_message_count(app) == 0


def test_mentions_match_the_nickname_or_username_in_any_case():
    pattern = service.mention_pattern(User(username="_parley_bot", nickname="Parley 助手"))
    assert pattern.search("@Parley 助手 hi")
    assert pattern.search("@parley助手 hi")
    assert pattern.search("hi @_PARLEY_BOT")
    assert not pattern.search("Parley 助手 hi")
    assert not pattern.search("@Parley")


# --- configuration ---------------------------------------------------------------------------


def test_robot_settings_have_defaults(tmp_path):
    config = Config.from_env({"INSTANCE_PATH": str(tmp_path)})
    assert (config.BOT_ENABLED, config.BOT_NICKNAME, config.BOT_REPLY_TIMEOUT) == (True, "Parley 助手", 5)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"BOT_REPLY_TIMEOUT": "soon"}, "BOT_REPLY_TIMEOUT"),
        ({"BOT_REPLY_TIMEOUT": "0"}, "BOT_REPLY_TIMEOUT"),
        ({"BOT_ENABLED": "maybe"}, "BOT_ENABLED"),
        ({"BOT_NICKNAME": "x" * 65}, "BOT_NICKNAME"),
        ({"UNIT_API_KEY": "key", "UNIT_SECRET_KEY": "secret"}, "UNIT_SERVICE_ID"),
        ({"UNIT_SERVICE_ID": "S1"}, "UNIT_API_KEY"),
    ],
)
def test_bad_robot_settings_stop_start_up_naming_the_variable(tmp_path, env, name):
    with pytest.raises(ConfigError) as error:
        Config.from_env({"INSTANCE_PATH": str(tmp_path), **env})
    assert error.value.name == name


def test_the_switch_is_shared_through_the_store(app):
    with app.app_context():
        assert state.is_enabled() is True
        state.set_enabled(False)
        assert app.extensions["parley.bot_store"].get(state.ENABLED_KEY) == "0"
        assert state.is_enabled() is False


# --- a live server: a dead provider delays nobody --------------------------------------------

LIVE_REPLY_TIMEOUT = 2


@pytest.fixture(scope="module")
def server(app, fake, database_url, instance_path, tmp_path_factory):
    env = server_env(
        database_url,
        instance_path,
        LOGIN_RATE_LIMIT="1000 per minute",
        UNIT_BASE_URL=fake.url,
        UNIT_API_KEY=fake_unit.API_KEY,
        UNIT_SECRET_KEY=fake_unit.SECRET_KEY,
        UNIT_SERVICE_ID=fake_unit.SERVICE_ID,
        BOT_REPLY_TIMEOUT=str(LIVE_REPLY_TIMEOUT),
    )
    live = LiveServer(env, tmp_path_factory.mktemp("bot") / "server.log")
    try:
        yield live.start()
    finally:
        live.stop()


@pytest.fixture
def device(server, fake):
    fake.reset()
    with ExitStack() as stack:

        def make(username: str) -> Device:
            return stack.enter_context(Device(server.url, username, PASSWORD))

        yield make
        fake.release()


def from_bot(bot_id: int):
    return lambda message: message["sender"] is not None and message["sender"]["id"] == bot_id


def test_live_the_robot_types_then_answers_on_every_device(device, make_user):
    make_user("alice")
    phone, laptop = device("alice"), device("alice")
    opened = phone.get_json("/api/v1/bot")
    bot_id, conversation_id = opened["bot"]["id"], opened["conversation_id"]

    ack = phone.send(conversation_id, "你好")

    assert ack["ok"] is True
    for own in (phone, laptop):
        answer = own.wait_for("message:new", from_bot(bot_id), timeout=WAIT_SECONDS)
        assert answer["body"]["msg"] == "UNIT heard: 你好"
        assert own.events("typing")[0]["user_id"] == bot_id


def test_live_a_hanging_provider_delays_nobody_and_times_out_politely(device, make_user, befriend, fake):
    make_user("alice")
    carol_id, dave_id = make_user("carol"), make_user("dave")
    befriend(carol_id, dave_id)
    alice, carol, dave = device("alice"), device("carol"), device("dave")
    opened = alice.get_json("/api/v1/bot")
    bot_id, bot_chat = opened["bot"]["id"], opened["conversation_id"]
    pair_chat = carol.post("/api/v1/conversations", {"user_id": dave_id}).json()["conversation"]["id"]
    fake.hang = True

    assert alice.send(bot_chat, "hello?")["ok"] is True
    held = fake.wait_for_hanging_chat()  # the robot is waiting for UNIT now
    sent = carol.send(pair_chat, "are you there, dave?")
    delivered = dave.wait_for("message:new", lambda message: message["id"] == sent["message"]["id"])

    # Dave had Carol's message while the robot was still waiting for UNIT...
    assert delivered["body"]["msg"] == "are you there, dave?"
    assert not [message for message in alice.events("message:new") if from_bot(bot_id)(message)]
    assert held.finished_at is None
    # ...and the robot gave up on its own timeout, not because UNIT answered.
    fallback = alice.wait_for("message:new", from_bot(bot_id), timeout=LIVE_REPLY_TIMEOUT + WAIT_SECONDS)
    assert fallback["body"]["msg"] == FALLBACK["en"]
    assert held.finished_at is None
    assert alice.events("typing")[0]["user_id"] == bot_id
