"""The sensitive-word filter: every field it screens (message text by REST and socket, edits,
nicknames, signatures, group names and announcements, the server API's users), reject and mask,
the matching rules (letter case, Chinese, overlaps, word boundaries), lists changed in the
console taking effect at once (and in another process within its period), file imports, hit
counts, and a clean send paying no statement for any of it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from app.chat.schemas import MAX_LOCATION_TITLE, MAX_TEXT
from app.extensions import db
from app.groups.services import create_group
from app.models import AuditLog, Group, Message, User, WordList
from app.wordfilter import cache, screen_body, screen_text
from app.wordfilter import services as words
from app.wordfilter.matcher import Matcher
from tests.chat_helpers import new_client_msg_id

BLOCKED = {"code": "content_blocked", "fields": {}}


@pytest.fixture
def root(app, make_user):
    return make_user("root", is_admin=True)


@pytest.fixture
def lists(app, root):
    """A reject list and a mask list, made through the service as the console does."""

    def make(reject: str = "", mask: str = "", enabled: bool = True) -> dict[str, int]:
        made = {}
        with app.app_context():
            if reject:
                made["reject"] = words.create_list(root, "blocked", "reject", enabled, reject).id
            if mask:
                made["mask"] = words.create_list(root, "masked", "mask", enabled, mask).id
        return made

    return make


def refused(response, field: str) -> None:
    error = response.get_json()["error"] if hasattr(response, "get_json") else response["error"]
    assert error["code"] == "content_blocked"
    assert error["fields"] == {field: "contains a blocked word"}
    assert "badword" not in error["message"].lower()  # the word is not echoed


def messages(app) -> list[dict]:
    with app.app_context():
        query = select(Message).where(Message.sender_id.is_not(None)).order_by(Message.id)
        return [row.body for row in db.session.scalars(query)]


def hits(app) -> dict[str, int]:
    with app.app_context():
        cache.flush()
        return dict(db.session.execute(select(WordList.name, WordList.hits)).all())


def send_rest(device, conversation_id: int, text: str):
    return device.http.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"client_msg_id": new_client_msg_id(), "body": {"type": "txt", "msg": text}},
    )


# --- matching rules (pure) ------------------------------------------------------------------


def scan(words_by_action: dict[str, str], text: str):
    return Matcher(
        [(index, action, lines) for index, (action, lines) in enumerate(words_by_action.items())]
    ).scan(text)


def test_latin_letters_match_in_any_case_and_only_as_whole_words():
    rules = {"mask": "Ass\nbad word"}
    assert scan(rules, "You ASS!").masked == "You ***!"
    assert scan(rules, "that is a BAD  word") is None  # two spaces: not the phrase
    assert scan(rules, "a Bad Word, indeed").masked == "a ***, indeed"
    assert scan(rules, "class assessment") is None  # no Scunthorpe problem
    assert scan({"mask": "*spam*"}, "SPAMmers and antispam").masked == "***mers and anti***"


def test_chinese_words_match_anywhere_and_overlapping_hits_are_masked_together():
    rules = {"mask": "中国\n国人\n人民"}
    assert scan(rules, "中国人民好").masked == "***好"  # three overlapping hits, one stretch
    assert scan(rules, "中国和人民").masked == "***和***"
    assert scan({"mask": "ab*\n*bc*\nxyz"}, "abcd xyz").masked == "***d ***"
    verdict = scan(rules, "中国人")
    assert sum(verdict.hits.values()) == 2


def test_a_reject_hit_wins_over_mask_hits():
    verdict = scan({"mask": "spam", "reject": "scam"}, "spam and scam")
    assert verdict.rejected and verdict.masked is None
    assert verdict.hits == {1: 1}  # only the list that acted counts


def test_case_folding_keeps_positions_where_lower_case_is_longer():
    # "İ".lower() is two characters: the fold keeps it, so later hits still line up.
    assert scan({"mask": "ass"}, "İİİ ass İ").masked == "İİİ *** İ"


def test_touching_hits_are_masked_as_one_stretch():
    rules = {"mask": "bad\n坏"}
    assert scan(rules, "bad坏bad").masked == "***"
    assert scan(rules, "so bad坏bad, really").masked == "so ***, really"
    assert scan({"mask": "中国\n人民"}, "中国人民").masked == "***"
    assert scan(rules, "bad 坏").masked == "*** ***"  # a space between: two stretches


def test_full_width_latin_letters_match_as_their_ascii_selves():
    rules = {"mask": "bad"}
    assert scan(rules, "so ｂａｄ!").masked == "so ***!"
    assert scan(rules, "ＢａＤ坏 ok").masked == "***坏 ok"
    assert scan(rules, "ｂａｄｇｅ") is None  # a full-width letter is a letter for the boundary too
    assert scan({"mask": "ｒｕｄｅ"}, "RUDE, ｒｕｄｅ").masked == "***, ***"  # a full-width word too
    assert scan({"reject": "scam"}, "a ｓｃａｍ").rejected


def test_zero_width_characters_inside_a_word_do_not_hide_it():
    rules = {"mask": "bad\n坏"}
    assert scan(rules, "so b\u200bad!").masked == "so ***!"
    assert scan(rules, "b\u200cａ\u2060d\ufeff坏 ok").masked == "*** ok"  # one stretch, invisibles in it
    assert scan(rules, "\u200bbad \u200b").masked == "\u200b*** \u200b"
    assert scan(rules, "ba\u00addy\u200b") is None  # "baddy"
    assert scan({"reject": "scam"}, "s\u200dcam").rejected
    assert scan(rules, "\u200b\u200b") is None


def test_masks_line_up_on_mixed_text_of_one_to_four_byte_characters():
    rules = {"mask": "bad\n坏\n😀\nçà"}
    text = "İ bad é坏😀x 😀😀 ça çà, ｂａｄ\u200b坏 ok bad"
    assert scan(rules, text).masked == "İ *** é***x *** ça ***, *** ok ***"
    assert scan(rules, "坏" * 7).masked == "***"
    assert scan(rules, "坏 " * 3 + "𝔸bad bad").masked == "*** *** *** 𝔸*** ***"


def test_a_scan_decodes_each_byte_once_however_many_hits(monkeypatch):
    from app.wordfilter import matcher

    decoded = []
    counted = matcher.char_count
    monkeypatch.setattr(matcher, "char_count", lambda piece: decoded.append(len(piece)) or counted(piece))
    text = "坏" * 5000
    verdict = scan({"mask": "坏"}, text)
    assert verdict.masked == "***" and verdict.hits == {0: 5000}
    # One pass over the text's 15,000 bytes, not a decode from the start for each hit.
    assert sum(decoded) == len(text.encode()) and len(decoded) == 5000
    decoded.clear()
    verdict = scan({"mask": "ok\n坏"}, "ok " + "好坏 " * 2000 + "ok")
    assert verdict.hits == {0: 2002} and sum(decoded) <= len(("ok " + "好坏 " * 2000 + "ok").encode())


def test_a_scan_stops_at_the_first_reject_hit(monkeypatch):
    from app.wordfilter import matcher

    decoded = []
    counted = matcher.char_count
    monkeypatch.setattr(matcher, "char_count", lambda piece: decoded.append(len(piece)) or counted(piece))
    verdict = scan({"mask": "好", "reject": "坏"}, "好好坏" + "坏" * 4997)
    assert verdict.rejected and verdict.hits == {1: 1}
    assert decoded == [3, 3, 3]  # the two mask hits and the first reject hit: nothing after


def test_empty_lists_build_no_automaton():
    assert not Matcher([(1, "mask", "\n  \n*\n")])
    assert Matcher([]).scan("anything") is None


# --- where it applies ----------------------------------------------------------------------


def test_a_rest_message_with_a_reject_word_is_refused_and_nothing_is_stored(app, pair, lists):
    alice, _, bob, conversation_id = pair
    lists(reject="badword")
    response = send_rest(alice, conversation_id, "this is a BadWord here")
    assert response.status_code == 400
    refused(response, "body.msg")
    assert messages(app) == []
    assert bob.received("message:new") == []
    assert send_rest(alice, conversation_id, "this is fine").status_code == 201


def test_a_socket_message_is_masked_stored_masked_and_delivered_masked(app, pair, lists):
    alice, laptop, bob, conversation_id = pair
    lists(mask="damn\n该死")
    ack = alice.send(conversation_id, "Damn it, 该死的 bug")
    assert ack["ok"] is True
    assert ack["message"]["body"]["msg"] == "*** it, ***的 bug"
    assert [body["msg"] for body in messages(app)] == ["*** it, ***的 bug"]
    assert [event["body"]["msg"] for event in bob.received("message:new")] == ["*** it, ***的 bug"]
    assert [event["body"]["msg"] for event in laptop.received("message:new")] == ["*** it, ***的 bug"]


def test_a_socket_message_with_a_reject_word_is_refused(app, pair, lists):
    alice, _, bob, conversation_id = pair
    lists(reject="法轮功", mask="damn")
    ack = alice.send(conversation_id, "damn 法轮功")
    assert ack["ok"] is False
    refused(ack, "body.msg")
    assert messages(app) == []
    assert bob.received("message:new") == []


def test_a_location_title_is_screened(app, pair, lists):
    alice, _, _, conversation_id = pair
    lists(mask="badplace")
    body = {"type": "loc", "title": "The BadPlace cafe", "lat": 1.5, "lng": 2.5}
    ack = alice.send(conversation_id, body=body)
    assert ack["ok"] is True
    assert messages(app)[0]["title"] == "The *** cafe"


def test_an_edit_is_screened(app, pair, lists):
    alice, _, bob, conversation_id = pair
    seq = alice.send(conversation_id, "first")["message"]["seq"]
    lists(reject="badword", mask="heck")
    url = f"/api/v1/conversations/{conversation_id}/messages/{seq}"
    blocked = alice.http.patch(url, json={"msg": "now a badword", "version": 0})
    assert blocked.status_code == 400
    refused(blocked, "msg")
    assert messages(app) == [{"type": "txt", "msg": "first"}]
    masked = alice.http.patch(url, json={"msg": "oh heck", "version": 0})
    assert masked.status_code == 200
    assert masked.get_json()["message"]["body"]["msg"] == "oh ***"
    assert messages(app)[0]["msg"] == "oh ***"
    # The same edit again (a retry) is recognised as applied, masked as it is.
    again = alice.http.patch(url, json={"msg": "oh heck", "version": 0})
    assert again.status_code == 200 and again.get_json()["message"]["edit_count"] == 1


def test_an_edit_of_a_message_one_may_not_edit_is_not_screened(app, pair, lists, monkeypatch):
    alice, _, bob, conversation_id = pair
    seq = alice.send(conversation_id, "first")["message"]["seq"]
    lists(reject="badword", mask="heck")
    screened = []
    monkeypatch.setattr(cache, "count", lambda counts: screened.append(counts))
    url = f"/api/v1/conversations/{conversation_id}"
    cases = [
        (bob, f"{url}/messages/{seq}", 403, "not_editable"),  # someone else's
        (alice, f"{url}/messages/{seq + 5}", 404, "not_visible"),  # none such
        (alice, f"/api/v1/conversations/{conversation_id + 99}/messages/1", 404, "not_found"),
    ]
    for device, where, status, code in cases:
        for text in ("a badword", "oh heck"):
            answer = device.http.patch(where, json={"msg": text, "version": 0})
            assert (answer.status_code, answer.get_json()["error"]["code"]) == (status, code)
    assert screened == []  # no scan found anything, no hit counted
    assert messages(app) == [{"type": "txt", "msg": "first"}]
    assert hits(app) == {"blocked": 0, "masked": 0}


def test_a_masked_edit_is_cut_to_a_messages_size(app, pair, lists):
    alice, _, _, conversation_id = pair
    seq = alice.send(conversation_id, "first")["message"]["seq"]
    lists(mask="坏")
    url = f"/api/v1/conversations/{conversation_id}/messages/{seq}"
    answer = alice.http.patch(url, json={"msg": "坏 " * 2500, "version": 0})  # 5000 characters
    assert answer.status_code == 200
    text = answer.get_json()["message"]["body"]["msg"]
    assert len(text) == MAX_TEXT and text.startswith("*** *** ")
    assert [len(body["msg"]) for body in messages(app)] == [MAX_TEXT]


def test_a_merged_forward_title_is_screened(app, pair, lists):
    alice, _, _, conversation_id = pair
    alice.send(conversation_id, "minutes")
    lists(reject="badword", mask="heck")

    def forward(title: str):
        target = {"conversation_id": conversation_id, "client_msg_id": new_client_msg_id()}
        payload = {"conversation_id": conversation_id, "seqs": [1], "mode": "merged", "targets": [target]}
        return alice.http.post("/api/v1/messages/forward", json=payload | {"title": title})

    refused(forward("the badword chat"), "title")
    assert len(messages(app)) == 1
    assert forward("what the heck").status_code == 200
    assert messages(app)[-1]["title"] == "what the ***"


def test_a_nickname_on_register_is_screened(app, client, lists):
    lists(reject="badword", mask="jerk")
    response = client.post(
        "/api/v1/auth/register",
        json={"username": "newbie", "password": "password-123", "nickname": "BadWord"},
    )
    assert response.status_code == 400
    refused(response, "nickname")
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 1  # only root
    response = client.post(
        "/api/v1/auth/register", json={"username": "newbie", "password": "password-123", "nickname": "a jerk"}
    )
    assert response.status_code == 201
    assert response.get_json()["user"]["nickname"] == "a ***"


def test_a_username_standing_in_for_the_nickname_is_screened(app, client, lists):
    lists(reject="badword")
    response = client.post("/api/v1/auth/register", json={"username": "badword", "password": "password-123"})
    assert response.status_code == 400
    refused(response, "username")


def test_nickname_and_signature_in_a_profile_update_are_screened(app, make_user, login, lists):
    make_user("alice")
    alice = login("alice")
    lists(reject="badword", mask="jerk\nyo")
    blocked = alice.patch("/api/v1/auth/me", json={"nickname": "Alice", "signature": "a badword"})
    assert blocked.status_code == 400
    refused(blocked, "signature")
    me = alice.get("/api/v1/auth/me").get_json()["user"]
    assert me["nickname"] == "alice" and me["signature"] == ""  # nothing changed
    masked = alice.patch("/api/v1/auth/me", json={"nickname": "Jerk" * 16, "signature": "jerk!"})
    assert masked.status_code == 200
    me = masked.get_json()["user"]
    assert me["nickname"] == "Jerk" * 16  # no boundary inside: not a hit
    masked = alice.patch("/api/v1/auth/me", json={"nickname": "the jerk", "signature": "yo " * 66 + "yo"})
    me = masked.get_json()["user"]
    assert me["nickname"] == "the ***"
    # Masking made it longer than its column: cut to fit.
    assert len(me["signature"]) == 200 and me["signature"].startswith("*** *** ***")


def test_group_name_intro_and_announcement_are_screened(app, make_user, login, befriend, lists):
    owner_id = make_user("owner")
    befriend(owner_id, make_user("friend"))
    owner = login("owner")
    lists(reject="badword", mask="jerks")
    blocked = owner.post("/api/v1/groups", json={"name": "BadWord club", "member_ids": []})
    assert blocked.status_code == 400
    refused(blocked, "name")
    with app.app_context():
        assert db.session.scalar(select(func.count(Group.id))) == 0
    created = owner.post("/api/v1/groups", json={"name": "Jerks united", "member_ids": []})
    assert created.status_code == 201
    group = created.get_json()["group"]
    assert group["name"] == "*** united"
    url = f"/api/v1/groups/{group['id']}"
    blocked = owner.patch(url, json={"announcement": "no badword please", "name": "Fine"})
    assert blocked.status_code == 400
    refused(blocked, "announcement")
    with app.app_context():
        row = db.session.get(Group, group["id"])
        assert (row.name, row.announcement) == ("*** united", "")
    changed = owner.patch(url, json={"announcement": "no jerks", "intro": "for jerks"})
    assert changed.status_code == 200
    with app.app_context():
        row = db.session.get(Group, group["id"])
        assert (row.announcement, row.intro) == ("no ***", "for ***")


def test_a_masked_announcement_is_cut_to_its_size(app, make_user, login, lists):
    make_user("owner")
    owner = login("owner")
    lists(mask="坏")
    group = owner.post("/api/v1/groups", json={"name": "Team", "member_ids": []}).get_json()["group"]
    changed = owner.patch(f"/api/v1/groups/{group['id']}", json={"announcement": "坏 " * 2500})
    assert changed.status_code == 200
    with app.app_context():
        announcement = db.session.get(Group, group["id"]).announcement
        assert len(announcement) == 5000 and announcement.startswith("*** *** ")


def test_the_group_service_screens_a_name_made_without_a_route(app, make_user, lists):
    owner_id = make_user("owner")
    lists(mask="jerks")
    with app.app_context():
        group = create_group(owner_id, "JERKS")
        assert group.name == "***"


def test_server_api_user_create_and_update_are_screened(app, api_key, lists):
    headers = api_key("users")
    lists(reject="badword", mask="jerk")
    client = app.test_client()
    blocked = client.post(
        "/api/server/v1/users", json={"external_id": "e-1", "nickname": "Mr Badword"}, headers=headers
    )
    assert blocked.status_code == 400
    refused(blocked, "nickname")
    created = client.post(
        "/api/server/v1/users", json={"external_id": "e-1", "nickname": "Mr Jerk"}, headers=headers
    )
    assert created.status_code == 201, created.get_json()
    user = created.get_json()["user"]
    assert user["nickname"] == "Mr ***"
    patched = client.patch(f"/api/server/v1/users/{user['id']}", json={"signature": "jerk"}, headers=headers)
    assert patched.status_code == 200
    with app.app_context():
        assert db.session.get(User, user["id"]).signature == "***"


def test_file_bodies_and_other_kinds_pass_untouched(app, lists):
    lists(reject="badword")
    with app.app_context():
        body = {"type": "file", "upload_id": "0" * 32}
        assert screen_body(body) is body
        assert screen_text("x", "") == ""


def test_masking_never_makes_a_message_longer_than_its_kind_allows(app, pair, lists):
    alice, _, _, conversation_id = pair
    lists(mask="坏")
    with app.app_context():
        text = screen_body({"type": "txt", "msg": "坏 " * 2500})["msg"]  # 5000 characters
        assert len(text) == MAX_TEXT and text.startswith("*** *** ")
        title = screen_body({"type": "loc", "title": "坏 " * 100, "lat": 1.0, "lng": 2.0})["title"]
        assert len(title) == MAX_LOCATION_TITLE
    assert send_rest(alice, conversation_id, "坏 " * 2500).status_code == 201
    assert [len(body["msg"]) for body in messages(app)] == [MAX_TEXT]


# --- lists and their changes ---------------------------------------------------------------


def test_a_disabled_list_is_ignored(app, pair, lists):
    alice, _, _, conversation_id = pair
    lists(reject="badword", enabled=False)
    assert alice.send(conversation_id, "badword")["ok"] is True


def csrf_of(page) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True))
    assert match
    return match.group(1)


@pytest.fixture
def console(app, root, login):
    return login("root")


def test_a_change_in_the_console_takes_effect_at_once(app, pair, console):
    alice, _, _, conversation_id = pair
    token = csrf_of(console.get("/admin/words/new"))
    form = {
        "csrf_token": token,
        "name": "Rude",
        "action": "reject",
        "enabled": "y",
        "words": "rude\nRUDE\n\n粗鲁\n",
    }
    created = console.post("/admin/words/new", data=form)
    assert created.status_code == 302
    with app.app_context():
        row = db.session.scalar(select(WordList))
        assert row.words == "rude\n粗鲁"  # blank lines and repeats dropped
        list_id = row.id
    refused(alice.send(conversation_id, "so Rude"), "body.msg")
    # Switched to mask in the console: the next send is masked.
    form |= {"action": "mask"}
    assert console.post(f"/admin/words/{list_id}", data=form).status_code == 302
    assert alice.send(conversation_id, "so rude")["message"]["body"]["msg"] == "so ***"
    # Disabled: nothing is screened.
    form.pop("enabled")
    assert console.post(f"/admin/words/{list_id}", data=form).status_code == 302
    assert alice.send(conversation_id, "so rude")["message"]["body"]["msg"] == "so rude"
    # Deleted: gone, audited.
    deleted = console.post(f"/admin/words/{list_id}/delete", data={"csrf_token": token, "reason": "done"})
    assert deleted.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count(WordList.id))) == 0
        actions = list(
            db.session.scalars(
                select(AuditLog.action).where(AuditLog.target_type == "word_list").order_by(AuditLog.id)
            )
        )
    assert actions == ["wordlist_create", "wordlist_update", "wordlist_update", "wordlist_delete"]


def test_the_console_lists_words_and_hits_and_refuses_bad_forms(app, pair, console, lists):
    alice, _, _, conversation_id = pair
    made = lists(mask="rude")
    alice.send(conversation_id, "rude rude")
    page = console.get("/admin/words/").get_data(as_text=True)
    assert f'data-hits="{made["mask"]}">2<' in page  # this process's hits are written first
    assert f'data-words="{made["mask"]}">1<' in page
    token = csrf_of(console.get("/admin/words/new"))
    bad = console.post(
        "/admin/words/new", data={"csrf_token": token, "name": "x", "action": "ban", "words": "a"}
    )
    assert "Nothing was saved" in bad.get_data(as_text=True)
    long_line = console.post(
        "/admin/words/new", data={"csrf_token": token, "name": "x", "action": "mask", "words": "y" * 101}
    )
    assert "line 1 is not a word" in long_line.get_data(as_text=True)
    no_token = console.post("/admin/words/new", data={"name": "x", "action": "mask", "words": "a"})
    assert no_token.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count(WordList.id))) == 1


def test_users_may_not_open_the_console(app, make_user, login, lists):
    made = lists(mask="rude")
    make_user("alice")
    alice = login("alice")
    assert alice.get("/admin/words/").status_code == 403
    assert alice.post(f"/admin/words/{made['mask']}/delete", data={}).status_code in (400, 403)
    with app.app_context():
        assert db.session.scalar(select(func.count(WordList.id))) == 1
        with pytest.raises(Exception) as refused_service:
            words.delete_list(
                db.session.scalar(select(User.id).where(User.username == "alice")), made["mask"]
            )
        assert getattr(refused_service.value, "code", None) == "forbidden"


def upload(console, list_id: int, data: bytes, replace: bool = False):
    """POST the import form as a browser does (a body built here: the test client would spool a
    large one to a file it never closes)."""
    token = csrf_of(console.get(f"/admin/words/{list_id}"))
    boundary = "word-test-boundary"
    fields = {"csrf_token": token, **({"replace": "y"} if replace else {})}
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="words.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return console.post(
        f"/admin/words/{list_id}/import", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )


def test_importing_a_file_adds_its_words(app, pair, console, lists):
    alice, _, _, conversation_id = pair
    list_id = lists(mask="old")["mask"]
    data = "\ufeffNew\n\n  new  \n新词\r\nOLD\n".encode()
    response = upload(console, list_id, data)
    assert response.status_code == 302
    assert "Imported: 2 new words" in console.get(response.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        assert db.session.get(WordList, list_id).words == "old\nNew\n新词"
    assert alice.send(conversation_id, "old new 新词")["message"]["body"]["msg"] == "*** *** ***"
    upload(console, list_id, b"only\n", replace=True)
    with app.app_context():
        assert db.session.get(WordList, list_id).words == "only"


def test_a_file_that_is_not_utf8_or_too_large_is_refused(app, console, lists):
    list_id = lists(mask="old")["mask"]
    latin1 = upload(console, list_id, "café\n".encode("latin-1"))
    assert "not UTF-8" in console.get(latin1.headers["Location"]).get_data(as_text=True)
    too_large = upload(console, list_id, b"w\n" * (words.MAX_LIST_BYTES // 2) + b"x")
    assert "too large" in console.get(too_large.headers["Location"]).get_data(as_text=True)
    far_too_large = upload(console, list_id, b"w\n" * words.MAX_LIST_BYTES)
    assert far_too_large.status_code == 413
    with app.app_context():
        assert db.session.get(WordList, list_id).words == "old"
        assert (
            db.session.scalar(select(func.count(AuditLog.id)).where(AuditLog.action == "wordlist_import"))
            == 0
        )


def test_a_two_megabyte_list_saves_through_the_form(app, console):
    text = "\n".join(f"word{i:06d}" for i in range(150_000))  # ~1.6 MB, over the usual form cap
    token = csrf_of(console.get("/admin/words/new"))
    form = {"csrf_token": token, "name": "Big", "action": "reject", "enabled": "y", "words": text}
    body = urlencode(form).encode()
    assert len(body) > app.config["MAX_JSON_BYTES"]
    response = console.post("/admin/words/new", data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 302
    with app.app_context():
        assert screen_text("t", "plain text") == "plain text"
        with pytest.raises(Exception, match="not allowed"):
            screen_text("t", "a word149999 b")


def test_another_process_notices_a_change_within_its_period(app, make_app, root, lists):
    other = make_app(WORDFILTER_CACHE_SECONDS="0")
    slow = make_app(WORDFILTER_CACHE_SECONDS="3600")
    for application in (other, slow):
        with application.app_context():
            assert screen_text("t", "rude") == "rude"  # read: no lists
    made = lists(mask="rude")
    with other.app_context():
        assert screen_text("t", "rude") == "***"
    with slow.app_context():
        assert screen_text("t", "rude") == "rude"  # its period is not up yet
    with app.app_context():
        words.update_list(root, made["mask"], "masked", "mask", False, "rude")
    with other.app_context():
        assert screen_text("t", "rude") == "rude"
    with app.app_context():
        words.delete_list(root, made["mask"])
        words.create_list(root, "again", "reject", True, "rude")
    with other.app_context(), pytest.raises(Exception, match="not allowed"):
        screen_text("t", "rude")
    for application in (other, slow):
        cache.reset(application)  # its unwritten hits would land on a later test's lists


def test_another_process_notices_a_change_stamped_by_a_clock_that_runs_behind(
    app, make_app, root, lists, monkeypatch
):
    other = make_app(WORDFILTER_CACHE_SECONDS="0")
    made = lists(reject="scam", mask="rude")  # the mask list is the newest
    with other.app_context():
        assert screen_text("t", "rude nasty") == "*** nasty"
    # The reject list is changed on a host whose clock is an hour behind: its updated_at is
    # older than the mask list's, the number of lists is the same.
    behind = datetime.now(UTC) - timedelta(hours=1)
    monkeypatch.setattr(words, "utcnow", lambda: behind)
    with app.app_context():
        words.update_list(root, made["reject"], "blocked", "reject", True, "scam\nnasty")
    with other.app_context(), pytest.raises(Exception, match="not allowed"):
        screen_text("t", "rude nasty")
    cache.reset(other)


# --- hits and cost -------------------------------------------------------------------------


def test_hits_are_counted_per_list_and_shown_on_the_dashboard(app, pair, console, lists):
    alice, _, _, conversation_id = pair
    lists(reject="badword", mask="rude\n*ru*")
    alice.send(conversation_id, "rude and rude")  # "rude" and "*ru*" both hit, twice
    alice.send(conversation_id, "badword rude")  # refused: only the reject list counts
    alice.send(conversation_id, "clean")
    assert hits(app) == {"blocked": 1, "masked": 4}
    dashboard = console.get("/admin/").get_data(as_text=True)
    assert 'data-stat="word_hits">5<' in dashboard
    assert 'data-hits="masked">4<' in dashboard


def test_hits_are_written_by_a_greenlet_of_their_own(app, lists):
    import gevent

    lists(mask="rude")
    with app.app_context():
        assert screen_text("t", "rude") == "***"
        state = app.extensions[cache.KEY]
        assert state.pending and state.flusher is not None
    gevent.sleep(cache.FLUSH_DELAY_SECONDS + 0.2)
    with app.app_context():
        assert not state.pending
        assert db.session.scalar(select(WordList.hits)) == 1


def test_a_clean_send_adds_no_statement(app, pair, lists, count_queries, monkeypatch):
    alice, _, _, conversation_id = pair
    monkeypatch.setitem(app.config, "WORDFILTER_CACHE_SECONDS", 3600)
    alice.send(conversation_id, "warm up")
    with count_queries() as without_lists:
        assert alice.send(conversation_id, "hello there")["ok"] is True
    lists(reject="\n".join(f"bad{i}" for i in range(1000)), mask="中国\nrude")
    with count_queries() as with_lists:
        assert alice.send(conversation_id, "hello again")["ok"] is True
    assert len(with_lists) == len(without_lists)
    with count_queries() as by_rest:
        assert send_rest(alice, conversation_id, "hello by rest").status_code == 201
    assert not [statement for statement in with_lists + by_rest if "word_lists" in statement]
