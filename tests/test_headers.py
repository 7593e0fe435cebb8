"""Security headers: a strict Content-Security-Policy on every HTML page, no framing anywhere."""

from __future__ import annotations

import re

import pytest

from app.headers import ADMIN_HANDLER_HASHES


def policy_of(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy")
    assert header, f"{response.request.path} has no Content-Security-Policy"
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def assert_strict(response, *, nonce: str | None = None) -> dict[str, list[str]]:
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    policy = policy_of(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["style-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]
    assert set(policy["img-src"]) == {"'self'", "data:", "blob:", "https:"}
    assert policy["connect-src"][0] == "'self'"
    if nonce is None:
        assert policy["script-src"] == ["'self'"]
    else:
        assert policy["script-src"] == [
            "'self'",
            f"'nonce-{nonce}'",
            "'unsafe-hashes'",
            *ADMIN_HANDLER_HASHES,
        ]
    return policy


def inline_scripts(html: str) -> list[str]:
    """Script tags a browser would run: no src, and not a JSON data block."""
    found = []
    for attributes in re.findall(r"<script\b([^>]*)>", html):
        if "src=" in attributes or 'type="application/json"' in attributes:
            continue
        found.append(attributes)
    return found


@pytest.fixture
def member(make_user, login):
    make_user("alice")
    return login("alice")


@pytest.mark.parametrize("path", ["/login", "/register", "/does-not-exist"])
def test_public_pages_carry_the_strict_policy(client, path):
    response = client.get(path)
    assert response.mimetype == "text/html"
    assert_strict(response)
    assert inline_scripts(response.get_data(as_text=True)) == []


@pytest.mark.parametrize("path", ["/", "/account"])
def test_signed_in_pages_carry_the_strict_policy(member, path):
    response = member.get(path)
    assert response.status_code == 200
    policy = assert_strict(response)
    # The chat's socket may connect over ws(s) to this same host.
    assert "ws://localhost" in policy["connect-src"]
    assert "wss://localhost" in policy["connect-src"]
    assert inline_scripts(response.get_data(as_text=True)) == []


def test_the_socket_host_is_left_out_when_the_host_header_is_odd(member):
    response = member.get("/", headers={"Host": "evil.example; script-src *"})
    policy = policy_of(response)
    assert policy["connect-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]


def test_admin_pages_admit_only_their_own_inline_scripts_by_nonce(make_user, login):
    make_user("root", is_admin=True)
    admin = login("root")
    nonces = set()
    for path in ("/admin/", "/admin/user/", "/admin/message/", "/admin/auditlog/"):
        response = admin.get(path)
        assert response.status_code == 200, path
        html = response.get_data(as_text=True)
        nonce = re.search(r'nonce="([^"]+)"', html).group(1)
        assert_strict(response, nonce=nonce)
        # Every executable inline script of the page carries this request's nonce.
        for attributes in inline_scripts(html):
            assert f'nonce="{nonce}"' in attributes, (path, attributes)
        nonces.add(nonce)
    assert len(nonces) == 4  # one per response, never reused


def test_json_answers_refuse_framing_and_sniffing(client):
    response = client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in response.headers


def test_static_files_are_not_sniffed(client):
    response = client.get("/static/js/app.js")
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    response.close()
