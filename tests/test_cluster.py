"""Two and four Parley processes behind nginx behave exactly like one: delivery, presence, bans and
revocations, recalls, edits and reactions, shared rate limits, the robot, and long-polling clients.

One cluster per size (`Cluster`: gunicorn processes on PostgreSQL and one Redis, behind Debian's
nginx with the deployment's proxy rules) serves every test of this module. Each client signs in
through nginx, pinned to the process the test picks (the route cookie nginx itself would set), so
a user's devices sit on different processes; some clients are held to long-polling. Every check
is on what each device received, and that it received it once: the tests say nothing of how
the processes reach one another.
"""

from __future__ import annotations

import time
from contextlib import ExitStack

import pytest
import requests
import socketio

from app.groups.services import create_group
from tests.cluster import Cluster, node_names, pin
from tests.conftest import server_env
from tests.socket_client import Device

pytestmark = pytest.mark.postgresql

# Long enough for an event that should not come to have arrived (a duplicate) to have arrived.
QUIET_SECONDS = 0.5
WAIT_SECONDS = 10.0
# Sends per user and minute, counted in Redis for every process at once. Only the rate-limit test
# reaches it: every other test sends far fewer messages per user.
SEND_LIMIT = 20


@pytest.fixture(scope="module", params=[2, 4], ids=lambda count: f"{count}-processes")
def cluster(request, app, database_url, instance_path, redis_url, tmp_path_factory):
    count = request.param
    env = server_env(
        database_url,
        instance_path,
        REDIS_URL=redis_url,
        LOGIN_RATE_LIMIT="1000 per minute",  # every device signs in from 127.0.0.1
        MESSAGE_RATE_LIMIT=f"{SEND_LIMIT} per minute",
    )
    with ExitStack() as stack:
        yield Cluster(stack, env, tmp_path_factory.mktemp(f"cluster-{count}"), count)


@pytest.fixture
def nodes(cluster) -> list[str]:
    return node_names(len(cluster.servers))


@pytest.fixture
def device(cluster):
    """Sign in a new device of `username` through nginx on process `node` and open its socket
    there (over long-polling only with `polling=True`). Closed at the end of the test, before
    the cluster stops."""
    with ExitStack() as stack:

        def make(username: str, node: str, *, polling: bool = False, connect: bool = True) -> Device:
            transports = ("polling",) if polling else ("websocket",)
            made = stack.enter_context(cluster.device(node, username, connect=connect, transports=transports))
            assert cluster.node_of(made.http) == node
            return made

        yield make


def open_direct(device: Device, peer_id: int) -> int:
    response = device.post("/api/v1/conversations", {"user_id": peer_id})
    assert response.status_code in (200, 201), response.text
    return response.json()["conversation"]["id"]


def received_once(devices: list[Device], event: str, predicate, count: int = 1) -> dict[Device, list]:
    """Wait until each device has `count` matching `event`s, give a duplicate time to arrive, and
    return what each received: exactly `count` each."""
    for receiver in devices:
        receiver.wait_until(
            lambda receiver=receiver: len([e for e in receiver.events(event) if predicate(e)]) >= count,
            timeout=WAIT_SECONDS,
            what=f"{count} {event!r} on device {receiver.device_id}",
        )
    time.sleep(QUIET_SECONDS)
    got = {receiver: [e for e in receiver.events(event) if predicate(e)] for receiver in devices}
    for receiver, events in got.items():
        assert len(events) == count, f"device {receiver.device_id} got {len(events)} {event!r}: {events}"
    return got


def heard(devices: list[Device], message: dict) -> None:
    """Wait until every device has `message` (across processes, clients order by seq: a test that
    checks arrival order sends from another process only once the earlier message is heard)."""
    for receiver in devices:
        receiver.wait_until(
            lambda receiver=receiver: message in receiver.events("message:new"),
            timeout=WAIT_SECONDS,
            what=f"message {message['seq']} on device {receiver.device_id}",
        )


def in_conversation(conversation_id: int):
    return lambda event: event["conversation_id"] == conversation_id


def route_recorder(device: Device) -> list[str | None]:
    """The process nginx named (its route cookie) on every later long-polling request of the
    device's socket."""
    routes: list[str | None] = []
    http = device.sio.eio.http
    assert http is not None, "the socket is not on long-polling"

    def record(response, *args, **kwargs):
        routes.append(response.cookies.get("parley_route"))

    http.hooks["response"].append(record)
    return routes


def invalid_sessions(cluster: Cluster) -> list[str]:
    """Lines where a process refused a long-polling request it does not hold."""
    lines = []
    for name, server in cluster.servers.items():
        text = server.log_path.read_text(errors="replace")
        lines += [f"{name}: {line}" for line in text.splitlines() if "Invalid session" in line]
    return lines


# --- delivery ---------------------------------------------------------------------------------


def test_a_direct_message_reaches_every_device_of_both_users_once(device, nodes, make_user, befriend):
    alice_id, bob_id = make_user("alice"), make_user("bob")
    befriend(alice_id, bob_id)
    first, last = nodes[0], nodes[-1]
    alice_phone, alice_laptop = device("alice", first), device("alice", last, polling=True)
    bob_phone, bob_laptop = device("bob", last), device("bob", nodes[1], polling=True)
    conversation_id = open_direct(alice_phone, bob_id)

    everyone = [alice_phone, alice_laptop, bob_phone, bob_laptop]

    to_bob = alice_phone.send(conversation_id, "from the first process")
    assert to_bob["ok"], to_bob
    heard(everyone, to_bob["message"])
    to_alice = bob_phone.send(conversation_id, "from the last process")
    assert to_alice["ok"], to_alice

    got = received_once(everyone, "message:new", in_conversation(conversation_id), count=2)
    for receiver in everyone:
        assert got[receiver] == [to_bob["message"], to_alice["message"]]


def test_a_group_spread_over_every_process_hears_each_process_once_in_seq_order(
    app, device, nodes, make_user, befriend
):
    names = [f"member{n}" for n in range(8)]
    owner_id, *others = [make_user(name) for name in names]
    for other in others:
        befriend(owner_id, other)
    with app.app_context():
        conversation_id = create_group(owner_id, "Everywhere", others).conversation_id
    # Each member on one process, every other one with a second device on the next process;
    # every third device on long-polling.
    members: list[Device] = []
    first_devices: dict[str, Device] = {}
    for index, name in enumerate(names):
        homes = [nodes[index % len(nodes)]]
        if index % 2 == 0:
            homes.append(nodes[(index + 1) % len(nodes)])
        for home in homes:
            members.append(device(name, home, polling=len(members) % 3 == 2))
            first_devices.setdefault(name, members[-1])

    sent: list[dict] = []
    for index, node in enumerate(nodes):
        sender = first_devices[names[index]]  # on `node`
        # Two at once from one process; the next process's only once these have been heard
        # (across processes, clients order by seq).
        for number in range(2):
            ack = sender.send(conversation_id, f"{names[index]} on {node}: {number}")
            assert ack["ok"], ack
            sent.append(ack["message"])
        heard(members, sent[-1])

    assert [message["seq"] for message in sent] == list(range(2, 2 + 2 * len(nodes)))
    after_creation = lambda message: message["conversation_id"] == conversation_id and message["seq"] > 1  # noqa: E731
    got = received_once(members, "message:new", after_creation, len(sent))
    for member in members:
        assert got[member] == sent


# --- presence ---------------------------------------------------------------------------------


def test_presence_follows_the_first_and_last_socket_across_processes(device, nodes, make_user, befriend):
    alice_id, bob_id = make_user("alice"), make_user("bob")
    befriend(alice_id, bob_id)
    alice_phone, alice_laptop = device("alice", nodes[0]), device("alice", nodes[-1], polling=True)
    open_direct(alice_phone, bob_id)
    watchers = [alice_phone, alice_laptop]
    about_bob = lambda event: event["user_id"] == bob_id  # noqa: E731

    bob_phone = device("bob", nodes[1])
    [online] = received_once(watchers, "presence", about_bob)[alice_phone]
    assert online == {"user_id": bob_id, "online": True, "last_seen_at": None}
    # A second socket on another process, and the first one closing, change nothing.
    bob_laptop = device("bob", nodes[2 % len(nodes)], polling=True)
    bob_phone.disconnect()
    time.sleep(QUIET_SECONDS)
    for watcher in watchers:
        assert [event for event in watcher.events("presence") if about_bob(event)] == [online]

    bob_laptop.disconnect()
    got = received_once(watchers, "presence", lambda event: about_bob(event) and not event["online"])
    offline = got[alice_phone][0]
    assert offline["last_seen_at"] is not None and got[alice_laptop] == [offline]
    for watcher in watchers:
        assert [event for event in watcher.events("presence") if about_bob(event)] == [online, offline]


# --- bans and revoked devices -------------------------------------------------------------------


def test_a_ban_drops_the_users_sockets_on_every_process_and_refuses_them_again(
    cluster, device, nodes, make_user, befriend, api_key
):
    user_id = make_user("mallory")
    befriend(make_user("bob"), user_id)
    sockets = [device("mallory", node, polling=index == 1) for index, node in enumerate(nodes)]
    cookies = [banned.cookie for banned in sockets]
    bystander = device("bob", nodes[-1])

    with requests.Session() as moderator:
        pin(moderator, nodes[0])
        response = moderator.post(
            f"{cluster.url}/api/server/v1/users/{user_id}/ban",
            json={"reason": "spam"},
            headers=api_key("moderation"),
            timeout=10,
        )
    assert response.status_code == 200, response.text

    for banned in sockets:
        banned.wait_disconnected(timeout=3)
    for banned, cookie in zip(sockets, cookies, strict=True):
        with pytest.raises(socketio.exceptions.ConnectionError):
            banned.connect(cookie=cookie)
        assert banned.get("/api/v1/auth/me").status_code == 401
    assert bystander.connected


def test_a_revoked_device_loses_its_socket_on_another_process(device, nodes, make_user):
    make_user("bob")
    phone = device("bob", nodes[0])
    laptop, tablet = device("bob", nodes[-1]), device("bob", nodes[1], polling=True)
    revoked = {laptop: laptop.cookie, tablet: tablet.cookie}

    for lost in revoked:
        assert phone.delete(f"/api/v1/auth/devices/{lost.device_id}").status_code == 204

    for lost, cookie in revoked.items():
        lost.wait_disconnected(timeout=3)
        with pytest.raises(socketio.exceptions.ConnectionError):
            lost.connect(cookie=cookie)
    time.sleep(QUIET_SECONDS)
    assert phone.connected


# --- recalls, edits and reactions ---------------------------------------------------------------


def test_a_recall_an_edit_and_a_reaction_on_one_process_reach_the_others(
    app, device, nodes, make_user, befriend
):
    owner_id, alice_id, bob_id = make_user("owner"), make_user("alice"), make_user("bob")
    befriend(owner_id, alice_id)
    befriend(owner_id, bob_id)
    with app.app_context():
        group = create_group(owner_id, "Across", [alice_id, bob_id]).conversation_id
    alice, owner = device("alice", nodes[0]), device("owner", nodes[-1])
    bob_phone, bob_laptop = device("bob", nodes[1], polling=True), device("bob", nodes[-1])
    everyone = [alice, owner, bob_phone, bob_laptop]

    sent = alice.send(group, "typo hre")["message"]
    seq = sent["seq"]
    received_once(everyone, "message:new", lambda message: message["seq"] == seq)

    reacted = bob_phone.call(
        "message:react", {"conversation_id": group, "seq": seq, "emoji": "👍", "add": True}
    )
    assert reacted["ok"], reacted
    got = received_once(everyone, "message:reactions", lambda event: event["seq"] == seq)
    assert got[alice][0]["reactions"] == [{"emoji": "👍", "count": 1, "user_ids": [bob_id]}]

    edited = alice.call(
        "message:edit", {"conversation_id": group, "seq": seq, "msg": "typo here", "version": 0}
    )
    assert edited["ok"], edited
    got = received_once(everyone, "message:edited", lambda message: message["seq"] == seq)
    assert {receiver: events[0]["body"]["msg"] for receiver, events in got.items()} == dict.fromkeys(
        everyone, "typo here"
    )

    second = alice.send(group, "off topic")["message"]
    recalled = owner.call("message:recall", {"conversation_id": group, "seq": second["seq"]})
    assert recalled["ok"], recalled
    got = received_once(everyone, "message:recalled", lambda message: message["seq"] == second["seq"])
    for [event] in got.values():
        assert event["recalled"] and event["body"]["by"] == "group_admin"
        assert "off topic" not in str(event)


# --- rate limits ------------------------------------------------------------------------------


def test_sends_from_every_process_count_against_one_rate_limit(device, nodes, make_user, befriend):
    alice_id, bob_id = make_user("alice"), make_user("bob")
    befriend(alice_id, bob_id)
    senders = [device("alice", node) for node in nodes]
    conversation_id = open_direct(senders[0], bob_id)

    acks = [senders[n % len(senders)].send(conversation_id, f"burst {n}") for n in range(SEND_LIMIT)]

    assert all(ack["ok"] for ack in acks), [ack for ack in acks if not ack["ok"]]
    for sender in senders:  # the shared count is full, whichever process is asked
        refusal = sender.send(conversation_id, "one too many")
        assert not refusal["ok"] and refusal["error"]["code"] == "rate_limited", refusal


# --- the robot ------------------------------------------------------------------------------


def test_the_robot_answers_once_and_every_process_hears_it(device, nodes, make_user):
    make_user("alice")
    devices = [device("alice", node, polling=index == len(nodes) - 1) for index, node in enumerate(nodes)]
    opened = devices[0].get_json("/api/v1/bot")
    bot_id, conversation_id = opened["bot"]["id"], opened["conversation_id"]

    question = devices[0].send(conversation_id, "hello")["message"]

    def answer(message: dict) -> bool:
        return message["conversation_id"] == conversation_id and message["seq"] > question["seq"]

    got = received_once(devices, "message:new", answer)
    [reply] = got[devices[0]]
    assert reply["sender"]["id"] == bot_id and reply["seq"] == question["seq"] + 1
    assert all(events == [reply] for events in got.values())
    history = devices[-1].get_json(f"/api/v1/conversations/{conversation_id}/messages")["messages"]
    assert [message["id"] for message in history if answer(message)] == [reply["id"]]


# --- long-polling -----------------------------------------------------------------------------


def test_long_polling_clients_talk_through_nginx_and_stay_on_their_process(
    cluster, device, nodes, make_user, befriend
):
    alice_id, bob_id = make_user("alice"), make_user("bob")
    befriend(alice_id, bob_id)
    alice = device("alice", nodes[-1], polling=True)
    bob_polling, bob_websocket = device("bob", nodes[0], polling=True), device("bob", nodes[-1])
    routes = {alice: route_recorder(alice), bob_polling: route_recorder(bob_polling)}
    conversation_id = open_direct(bob_websocket, alice_id)

    from_alice = [alice.send(conversation_id, f"polled {n}")["message"] for n in range(3)]
    heard([alice, bob_polling, bob_websocket], from_alice[-1])
    from_bob = [bob_polling.send(conversation_id, f"answered {n}")["message"] for n in range(3)]

    got = received_once(
        [alice, bob_polling, bob_websocket], "message:new", in_conversation(conversation_id), 6
    )
    assert all(events == from_alice + from_bob for events in got.values())
    for polling, home in ((alice, nodes[-1]), (bob_polling, nodes[0])):
        assert len(routes[polling]) >= 3 and set(routes[polling]) == {home}, routes[polling]
        assert cluster.node_of(polling.sio.eio.http) == home
    assert invalid_sessions(cluster) == []
