"""Message actions across processes: two gunicorn processes on PostgreSQL and Redis behind nginx,
real socket.io clients over websocket; a recall, an edit and reactions made on one process reach every
device on the other, and a device that reconnects later catches them up through /sync."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from app.extensions import db
from app.groups.services import create_group
from tests.cluster import Cluster
from tests.conftest import server_env

LOGIN_RATE_LIMIT = "1000 per minute"


@pytest.mark.postgresql
def test_recall_edit_and_reactions_cross_processes(
    app, make_user, befriend, database_url, instance_path, redis_url, tmp_path
):
    owner_id, alice_id, bob_id = make_user("owner"), make_user("alice"), make_user("bob")
    befriend(owner_id, alice_id)
    befriend(owner_id, bob_id)
    with app.app_context():
        group = create_group(owner_id, "Across", [alice_id, bob_id]).conversation_id
        db.session.commit()
    env = server_env(database_url, instance_path, REDIS_URL=redis_url, LOGIN_RATE_LIMIT=LOGIN_RATE_LIMIT)
    with ExitStack() as stack:
        cluster = Cluster(stack, env, tmp_path)
        alice = stack.enter_context(cluster.device("a", "alice"))
        owner = stack.enter_context(cluster.device("b", "owner"))
        bob_phone = stack.enter_context(cluster.device("b", "bob"))
        bob_laptop = stack.enter_context(cluster.device("a", "bob", connect=False))
        cursor = bob_laptop.get_json("/api/v1/sync")["cursor"]

        sent = alice.send(group, "typo hre")["message"]
        seq = sent["seq"]
        assert bob_phone.wait_for("message:new", lambda m: m["seq"] == seq)["id"] == sent["id"]

        reacted = bob_phone.call(
            "message:react", {"conversation_id": group, "seq": seq, "emoji": "👍", "add": True}
        )
        assert reacted["ok"], reacted
        event = alice.wait_for("message:reactions", lambda e: e["seq"] == seq)
        assert event["reactions"] == [{"emoji": "👍", "count": 1, "user_ids": [bob_id]}]

        edited = alice.call(
            "message:edit", {"conversation_id": group, "seq": seq, "msg": "typo here", "version": 0}
        )
        assert edited["ok"], edited
        assert owner.wait_for("message:edited", lambda m: m["seq"] == seq)["body"]["msg"] == "typo here"

        second = alice.send(group, "off topic")["message"]
        recalled = owner.call("message:recall", {"conversation_id": group, "seq": second["seq"]})
        assert recalled["ok"], recalled
        for device in (alice, bob_phone):
            event = device.wait_for("message:recalled", lambda m: m["seq"] == second["seq"])
            assert event["recalled"] and event["body"]["by"] == "group_admin"
            assert "off topic" not in str(event)

        # The device that was away learns all of it from the stream.
        page = bob_laptop.get_json("/api/v1/sync", cursor=cursor)
        latest = {message["seq"]: message for message in page["messages"]}
        assert latest[seq]["body"]["msg"] == "typo here" and latest[seq]["edit_count"] == 1
        assert latest[seq]["reactions"][0]["user_ids"] == [bob_id]
        assert latest[second["seq"]]["recalled"] is True
