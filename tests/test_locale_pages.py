"""Server pages, flashes, form errors, API and socket errors and the admin console speak the
request's language: the user's setting first, then Accept-Language, then English."""

from __future__ import annotations

import re

import pytest
from flask_babel import force_locale

from app.errors import ApiError, not_found, text_from_wire, text_to_wire
from app.extensions import db, socketio
from app.locales import _l
from app.models import User
from tests.chat_helpers import new_client_msg_id

ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}
EN = {"Accept-Language": "en-US,en;q=0.9"}

# Pages anyone can open: a string each shows in Chinese, and its English.
PUBLIC_PAGES = [
    ("/login", "注册账号", "Create an account"),
    ("/register", "已有账号？", "Have an account?"),
    ("/login/token", "登录 Parley？", "Sign in to Parley?"),
    ("/no-such-page", "返回 Parley", "Back to Parley"),
]


def html_lang(page: str) -> str:
    return re.search(r'<html lang="([^"]+)"', page).group(1)


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def set_locale(app, user_id: int, locale: str | None) -> None:
    with app.app_context():
        db.session.get(User, user_id).locale = locale
        db.session.commit()


@pytest.mark.parametrize(("path", "chinese", "english"), PUBLIC_PAGES)
def test_public_pages_follow_accept_language(client, path, chinese, english):
    zh = client.get(path, headers=ZH).get_data(as_text=True)
    assert html_lang(zh) == "zh-CN"
    assert chinese in zh and english not in zh
    en = client.get(path, headers=EN).get_data(as_text=True)
    assert html_lang(en) == "en"
    assert english in en and chinese not in en


def test_no_header_or_an_unknown_language_is_english(client):
    for headers in ({}, {"Accept-Language": "fr-FR,fr;q=0.9"}, {"Accept-Language": "x" * 300}):
        page = client.get("/login", headers=headers).get_data(as_text=True)
        assert html_lang(page) == "en" and "Create an account" in page


def test_the_error_page_speaks_chinese(client):
    response = client.get("/no-such-page", headers=ZH)
    page = response.get_data(as_text=True)
    assert response.status_code == 404
    assert "在服务器上找不到请求的地址" in page
    assert "错误 404（not_found）" in page


def test_form_labels_and_validation_messages_in_chinese(client):
    page = client.get("/register", headers=ZH).get_data(as_text=True)
    assert "用户名" in page and "昵称" in page and "密码" in page
    response = client.post(
        "/register", data={"csrf_token": csrf_of(page), "username": "", "password": "x"}, headers=ZH
    )
    assert response.status_code == 400
    refused = response.get_data(as_text=True)
    assert "该字段是必填字段。" in refused  # WTForms' own catalogue, in the same language
    assert "This field is required." not in refused


def test_a_service_refusal_on_a_page_is_chinese(app, client, make_user):
    make_user("taken")
    page = client.get("/register", headers=ZH).get_data(as_text=True)
    response = client.post(
        "/register",
        data={"csrf_token": csrf_of(page), "username": "taken", "password": "long enough 123"},
        headers=ZH,
    )
    assert response.status_code == 409
    assert "已被占用" in response.get_data(as_text=True)
    with app.app_context():  # and the account was not made twice
        assert db.session.query(User).filter(User.username_key == "taken").count() == 1


def test_wrong_password_flash_is_chinese(client, make_user):
    make_user("amy")
    page = client.get("/login", headers=ZH).get_data(as_text=True)
    response = client.post(
        "/login", data={"csrf_token": csrf_of(page), "username": "amy", "password": "wrong one"}, headers=ZH
    )
    assert "用户名或密码错误。" in response.get_data(as_text=True)


def test_account_page_and_its_flash_follow_the_user(app, make_user, login):
    user_id = make_user("bea")
    browser = login("bea")
    page = browser.get("/account", headers=ZH).get_data(as_text=True)
    assert html_lang(page) == "zh-CN"
    assert "个人资料" in page and "保存个人资料" in page and "本设备" in page
    saved = browser.post(
        "/account",
        data={"csrf_token": csrf_of(page), "profile-nickname": "Bea", "profile-signature": ""},
        headers=ZH,
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "个人资料已保存。" in saved
    set_locale(app, user_id, "en")  # the setting beats the header
    page = browser.get("/account", headers=ZH).get_data(as_text=True)
    assert html_lang(page) == "en" and "Save profile" in page and "保存个人资料" not in page


def test_the_users_setting_beats_an_english_browser(app, make_user, login):
    user_id = make_user("cai")
    set_locale(app, user_id, "zh-CN")
    page = login("cai").get("/account", headers=EN).get_data(as_text=True)
    assert html_lang(page) == "zh-CN" and "保存个人资料" in page


def test_api_errors_follow_the_users_language(app, make_user, login):
    zh_id, en_id = make_user("dan"), make_user("eve")
    set_locale(app, zh_id, "zh-CN")
    set_locale(app, en_id, "en")
    zh, en = login("dan"), login("eve")
    for browser, want in ((zh, "找不到该会话。"), (en, "No such conversation.")):
        body = browser.get("/api/v1/conversations/999999", headers=EN if browser is zh else ZH).get_json()
        assert body["error"]["code"] == "not_found"  # codes never change with the language
        assert body["error"]["message"] == want
    fields = zh.patch("/api/v1/auth/me", json={"nickname": "n" * 200}).get_json()["error"]
    assert fields["code"] == "invalid_input"
    assert fields["message"] == "部分字段无效。"
    assert fields["fields"]["nickname"] == "字符串最多只能有 64 个字符"
    fields = en.patch("/api/v1/auth/me", json={"nickname": "n" * 200}).get_json()["error"]
    assert fields["fields"]["nickname"] == "String should have at most 64 characters"
    with app.app_context():  # refused: nothing changed
        assert db.session.get(User, zh_id).nickname != "n" * 200


def test_an_anonymous_api_error_follows_accept_language(client):
    body = client.get("/api/v1/auth/me", headers=ZH).get_json()
    assert body["error"]["code"] == "unauthenticated"
    assert body["error"]["message"] == "请先登录。"


def test_socket_acks_follow_the_users_setting(app, make_user, login):
    user_id = make_user("fay")
    set_locale(app, user_id, "zh-CN")
    http = login("fay")
    socket = socketio.test_client(app, flask_test_client=http)
    assert socket.is_connected()
    payload = {
        "conversation_id": 999999,
        "client_msg_id": new_client_msg_id(),
        "body": {"type": "txt", "msg": "x"},
    }
    ack = socket.emit("message:send", payload, callback=True)
    assert ack["ok"] is False and ack["error"]["code"] == "not_found"
    assert ack["error"]["message"] == "找不到该会话。"
    bad = socket.emit("message:send", {"conversation_id": "x"}, callback=True)
    assert bad["error"]["message"] == "部分字段无效。"
    assert "必填字段" in bad["error"]["fields"].values()
    set_locale(app, user_id, "en")
    ack = socket.emit("message:send", payload, callback=True)
    assert ack["error"]["message"] == "No such conversation."
    socket.disconnect()


def test_a_socket_ack_is_sent_when_the_database_fails(app, make_user, login, monkeypatch):
    """Choosing the language reads the user's setting: when the database is what failed, the
    `internal_error` ack still goes out, in the handshake's language."""
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import scoped_session

    from app.chat import events

    make_user("gil")
    socket = socketio.test_client(app, flask_test_client=login("gil"), headers=ZH)
    assert socket.is_connected()

    def down(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("the database is gone"))

    monkeypatch.setattr(events, "check_send_rate", down)
    monkeypatch.setattr(scoped_session, "get", down)
    body = {"type": "txt", "msg": "x"}
    payload = {"conversation_id": 1, "client_msg_id": new_client_msg_id(), "body": body}
    ack = socket.emit("message:send", payload, callback=True)
    monkeypatch.undo()
    assert ack["ok"] is False and ack["error"]["code"] == "internal_error"
    assert ack["error"]["message"] == "服务器出了点问题。"
    socket.disconnect()


def test_an_http_error_is_answered_when_loading_the_user_fails(app, make_user, login, monkeypatch):
    """The language of an error is chosen without the signed-in user when loading them is what
    failed: the answer is still `internal_error`, in the header's language."""
    from sqlalchemy.exc import OperationalError

    from app.auth import services

    make_user("hoa")
    http = login("hoa")

    def down(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("the database is gone"))

    monkeypatch.setattr(services, "load_device", down)
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    response = http.get("/api/v1/auth/me", headers=ZH)
    assert response.status_code == 500
    error = response.get_json()["error"]
    assert error == {"code": "internal_error", "message": "服务器出了点问题。", "fields": {}}


def test_texts_with_values_survive_the_media_workers_wire(app):
    error = ApiError(
        "file_too_large", _l("This %(kind)s is over the limit of %(limit)s bytes.", kind="x", limit=5)
    )
    wire = error.to_wire()
    rebuilt = ApiError(wire["code"], text_from_wire(wire["message"]), wire["status"])
    assert text_to_wire(rebuilt.msgid) == wire["message"]
    with app.test_request_context(headers=ZH):
        assert rebuilt.message == "这个x超过了 5 字节的上限。"
        assert not_found("user").message == "找不到该用户。"
    with app.test_request_context(headers=EN):
        assert rebuilt.message == "This x is over the limit of 5 bytes."
    with app.app_context(), force_locale("zh_CN"):
        assert ApiError("x", "Some fields are invalid.").to_dict()["message"] == "部分字段无效。"


# --- the admin console ---------------------------------------------------------------------------


@pytest.fixture
def zh_admin(app, make_user, login):
    admin_id = make_user("root", is_admin=True)
    set_locale(app, admin_id, "zh-CN")
    return login("root")


def test_the_admin_console_lists_are_chinese(zh_admin, make_user):
    make_user("gus")
    page = zh_admin.get("/admin/user/", headers=EN).get_data(as_text=True)
    for chinese in ("列表", "用户名", "昵称", "创建时间", "控制台角色", "仪表盘", "词表", "审计日志"):
        assert chinese in page, chinese
    for english in (">List<", ">Username<", ">Dashboard<", ">Audit log<"):
        assert english not in page, english
    for path, chinese in (
        ("/admin/group/", "成员数"),
        ("/admin/message/", "发送者"),
        ("/admin/auditlog/", "动作"),
    ):
        assert chinese in zh_admin.get(path).get_data(as_text=True), path


def test_an_admin_action_flashes_chinese(app, zh_admin, make_user):
    user_id = make_user("hal")
    details = zh_admin.get(f"/admin/user/details/?id={user_id}").get_data(as_text=True)
    assert "管理操作" in details and "封禁" in details and "原因" in details
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', details).group(1)
    done = zh_admin.post(
        f"/admin/user/{user_id}/ban", data={"csrf_token": token, "reason": "spam"}, follow_redirects=True
    ).get_data(as_text=True)
    assert "已封禁，所有设备均已退出登录。" in done
    refused = zh_admin.post(
        f"/admin/user/{user_id}/mute", data={"csrf_token": token, "minutes": "0"}, follow_redirects=True
    ).get_data(as_text=True)
    assert "没有执行任何操作" in refused


def test_a_wire_text_whose_values_do_not_fit_falls_back_to_its_msgid(app):
    text = text_from_wire({"msgid": "No such %(what)s.", "params": {"other": "x"}})
    with app.test_request_context(headers=ZH):
        assert ApiError("not_found", text, 404).to_dict()["message"] == "No such %(what)s."
