"""Every message action is an event in the sync stream: a device that was offline while members
replied, mentioned, edited, recalled, reacted, pinned, deleted for themselves and forwarded — and
while it was catching up — ends in exactly the state a fresh load gives."""

from __future__ import annotations

from app.extensions import db
from app.groups.services import create_group
from tests.chat_helpers import new_client_msg_id


class Member:
    """One signed-in device of a user, acting over REST."""

    def __init__(self, client):
        self.http = client
        self.id = client.get("/api/v1/auth/me").get_json()["user"]["id"]

    def ok(self, method: str, url: str, **kwargs) -> dict:
        if method != "get":
            kwargs.setdefault("json", {})  # a JSON body, as the browser client sends
        response = getattr(self.http, method)(url, **kwargs)
        assert response.status_code in (200, 201), (url, response.get_json())
        return response.get_json()

    def send(self, conversation_id: int, text: str, **extras) -> dict:
        payload = {"client_msg_id": new_client_msg_id(), "body": {"type": "txt", "msg": text}, **extras}
        return self.ok("post", f"/api/v1/conversations/{conversation_id}/messages", json=payload)["message"]

    def on(self, message: dict, action: str = "") -> str:
        return f"/api/v1/conversations/{message['conversation_id']}/messages/{message['seq']}{action}"


def _fresh_state(client) -> dict:
    """What a device that loads everything now sees: each conversation's summary and messages."""
    state = {}
    for summary in client.get("/api/v1/conversations").get_json()["conversations"]:
        page = client.get(f"/api/v1/conversations/{summary['id']}/messages?limit=100").get_json()
        assert not page["has_more"]
        state[summary["id"]] = (_comparable(summary), {m["seq"]: m for m in page["messages"]})
    return state


def _comparable(summary: dict) -> dict:
    return {key: value for key, value in summary.items() if key != "online"}


def _replay(client, cursor: str, summaries: dict, messages: dict, between_pages=()) -> str:
    """Apply /sync pages from `cursor` the way a client does; `between_pages` run one by one
    after each page (changes made while the device catches up)."""
    pending = list(between_pages)
    while True:
        page = client.get(f"/api/v1/sync?cursor={cursor}&limit=3").get_json()
        for message in page["messages"]:
            messages.setdefault(message["conversation_id"], {})[message["seq"]] = message
        for hidden in page["hidden"]:
            messages.get(hidden["conversation_id"], {}).pop(hidden["seq"], None)
        for summary in page["conversations"]:
            summaries[summary["id"]] = _comparable(summary)
        cursor = page["cursor"]
        if pending:
            pending.pop(0)()
        elif not page["has_more"]:
            return cursor


def test_catching_up_after_every_kind_of_action_equals_a_fresh_load(app, make_user, login, befriend):
    alice_id, bob_id, carol_id = make_user("alice"), make_user("bob"), make_user("carol")
    befriend(alice_id, bob_id)
    befriend(bob_id, carol_id)
    befriend(alice_id, carol_id)
    offline = login("alice")  # the device that goes away
    alice, bob, carol = Member(login("alice")), Member(login("bob")), Member(login("carol"))
    direct = alice.ok("post", "/api/v1/conversations", json={"user_id": bob_id})["conversation"]["id"]
    with app.app_context():
        group = create_group(bob_id, "Club", [alice_id, carol_id]).conversation_id
        db.session.commit()
    early = [bob.send(direct, f"early {i}") for i in range(3)]
    club_early = carol.send(group, "club early")

    listed = offline.get("/api/v1/conversations").get_json()
    cursor = listed["cursor"]
    summaries = {c["id"]: _comparable(c) for c in listed["conversations"]}
    messages = {
        c["id"]: {
            m["seq"]: m
            for m in offline.get(f"/api/v1/conversations/{c['id']}/messages").get_json()["messages"]
        }
        for c in listed["conversations"]
    }

    # While the device is away.
    b1 = bob.send(direct, "see you at 10")
    alice.send(direct, "ok!", reply_to=b1["seq"])
    called = carol.send(group, "@Alice look", mentions=[alice_id])
    everyone = bob.send(group, "@all meeting", mention_all=True)
    bob.ok("patch", bob.on(b1), json={"msg": "see you at 11", "version": 0})
    alice.ok("put", bob.on(b1, "/reactions/👍"))
    bob.ok("put", bob.on(b1, "/reactions/❤️"))
    bob.ok("put", f"/api/v1/conversations/{direct}/pins/{b1['seq']}")
    oops = carol.send(group, "wrong chat")
    carol.ok("post", carol.on(oops, "/recall"))
    rude = carol.send(group, "something rude")
    quoted = carol.send(group, "quote me", reply_to=club_early["seq"])
    bob.ok("post", bob.on(rude, "/recall"))  # the owner removes a member's message
    alice.ok("post", f"/api/v1/conversations/{direct}/messages/hide", json={"seqs": [early[0]["seq"]]})
    bob.ok(
        "post",
        "/api/v1/messages/forward",
        json={
            "conversation_id": direct,
            "seqs": [early[1]["seq"], early[2]["seq"]],
            "mode": "merged",
            "targets": [{"conversation_id": group, "client_msg_id": new_client_msg_id()}],
        },
    )
    carol.ok("post", carol.on(club_early, "/recall"))  # the quote in `quoted` follows
    bob.ok("put", f"/api/v1/conversations/{group}/pins/{quoted['seq']}")

    # And while it catches up, page by page.
    between = [
        lambda: bob.ok("put", bob.on(early[2], "/reactions/🎉")),
        lambda: bob.ok("patch", bob.on(b1), json={"msg": "see you at noon", "version": 1}),
        lambda: alice.ok(
            "post", f"/api/v1/conversations/{group}/messages/hide", json={"seqs": [quoted["seq"]]}
        ),
        lambda: bob.ok("delete", bob.on(b1, "/reactions/❤️")),
        lambda: alice.ok("post", f"/api/v1/conversations/{group}/read", json={"seq": called["seq"]}),
        lambda: bob.ok("delete", f"/api/v1/conversations/{direct}/pins/{b1['seq']}"),
    ]
    cursor = _replay(offline, cursor, summaries, messages, between)

    fresh = _fresh_state(offline)
    assert {cid: (summaries[cid], messages.get(cid, {})) for cid in fresh} == fresh
    assert set(summaries) == set(fresh)
    assert offline.get(f"/api/v1/sync?cursor={cursor}").get_json()["messages"] == []
    # The state is what the actions made it, not merely equal.
    direct_summary, direct_messages = fresh[direct]
    assert early[0]["seq"] not in direct_messages
    assert direct_messages[b1["seq"]]["body"]["msg"] == "see you at noon"
    assert [r["emoji"] for r in direct_messages[b1["seq"]]["reactions"]] == ["👍"]
    assert direct_summary["pins"] == []
    group_summary, group_messages = fresh[group]
    assert (
        group_messages[oops["seq"]]["recalled"] and group_messages[rude["seq"]]["body"]["by"] == "group_admin"
    )
    assert quoted["seq"] not in group_messages
    assert [pin["seq"] for pin in group_summary["pins"]] == [quoted["seq"]]
    assert group_summary["last_message"]["type"] == "merged"
    # Read past "@Alice look" on another device: only the @all is left unread.
    assert (group_summary["unread_mentions"], group_summary["mention_seq"]) == (1, everyone["seq"])
