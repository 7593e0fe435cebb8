"""A small stand-in for GitHub (or GitHub Enterprise Server) on 127.0.0.1, for the sign-in tests.

It speaks the documented shapes of GitHub's OAuth web flow and REST API, laid out as on an
Enterprise server (`GITHUB_BASE_URL` points Parley at it):

- `GET /login/oauth/authorize` — "the user approves": redirects to `redirect_uri` with `code` and
  `state` (or `error=access_denied` when `deny` is set);
- `POST /login/oauth/access_token` — trades the code for a token; client credentials in the body or
  HTTP Basic; answers JSON or a form per the `Accept` header; errors are a 200 with `error` fields,
  as GitHub does;
- `GET /api/v3/user` — the signed-in user, for `Authorization: Bearer <token>` (or `token <token>`).

Knobs for the tests: `user` (the GitHub account signed in at the fake), `deny`, `token_error`,
`user_status`, and `hang` (endpoint names that stall, at most `HANG_SECONDS`, to trip timeouts).

The `github` fixture starts one for a test, registered with `CLIENT_ID` and `CLIENT_SECRET`; a
test module takes it with `from tests.fake_github import github_fixture  # noqa: F401`. `dance`
and its steps (`start`, `authorize`) go through Parley's GitHub sign-in as a browser would.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests

HANG_SECONDS = 10
DOCS = "https://docs.github.com/rest"
CLIENT_ID = "Iv1.parley-test-app"
CLIENT_SECRET = "fake-github-client-secret-0123456789"
OCTOCAT = 583231


def github_user(user_id: int, login: str, name: str | None = None) -> dict:
    """A `GET /user` answer as GitHub documents it (the fields Parley may read, and more)."""
    return {
        "login": login,
        "id": user_id,
        "node_id": base64.b64encode(f"04:User{user_id}".encode()).decode(),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id}?v=4",
        "gravatar_id": "",
        "url": f"https://api.github.com/users/{login}",
        "html_url": f"https://github.com/{login}",
        "type": "User",
        "site_admin": False,
        "name": name,
        "company": None,
        "blog": "",
        "location": None,
        "email": None,
        "hireable": None,
        "bio": None,
        "public_repos": 2,
        "followers": 20,
        "following": 0,
        "created_at": "2008-01-14T04:33:35Z",
        "updated_at": "2008-01-14T04:33:35Z",
    }


class FakeGitHub:
    def __init__(self, client_id: str, client_secret: str):
        self.client_id = client_id
        self.client_secret = client_secret
        self.user: dict = github_user(OCTOCAT, "octocat", "The Octocat")
        self.deny = False
        self.token_error: str | None = None
        self.user_status = 200
        self.hang: set[str] = set()
        self.codes: dict[str, dict] = {}
        self.tokens: dict[str, dict] = {}
        self.calls: list[str] = []
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FakeGitHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _stall(self, endpoint: str) -> None:
        if endpoint in self.hang:
            self._release.wait(HANG_SECONDS)

    # --- the endpoints ------------------------------------------------------------------

    def authorize(self, query: dict[str, str]) -> tuple[int, dict, bytes]:
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or not redirect_uri.startswith("http"):
            return 404, {"Content-Type": "text/html"}, b"<h1>404 Not Found</h1>"
        if self.deny:
            answer = {
                "error": "access_denied",
                "error_description": "The user has denied your application access.",
                "error_uri": "https://docs.github.com/apps/troubleshooting-authorization-request-errors",
            }
        else:
            code = secrets.token_hex(10)
            with self._lock:
                self.codes[code] = {"user": dict(self.user), "redirect_uri": redirect_uri}
            answer = {"code": code}
        if "state" in query:
            answer["state"] = query["state"]
        return 302, {"Location": _with_query(redirect_uri, answer)}, b""

    def access_token(self, form: dict[str, str], headers) -> tuple[int, dict, bytes]:
        self._stall("token")
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = headers.get("Authorization", "")
        if basic.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
        with self._lock:
            grant = self.codes.pop(form.get("code", ""), None)
        if client_id != self.client_id or client_secret != self.client_secret:
            answer = _error("incorrect_client_credentials", "The client_id and/or client_secret are wrong.")
        elif self.token_error:
            answer = _error(self.token_error, "The code passed is incorrect or expired.")
        elif grant is None:
            answer = _error("bad_verification_code", "The code passed is incorrect or expired.")
        elif form.get("redirect_uri") and form["redirect_uri"] != grant["redirect_uri"]:
            answer = _error(
                "redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL."
            )
        else:
            token = "gho_" + secrets.token_hex(18)
            with self._lock:
                self.tokens[token] = grant["user"]
            answer = {"access_token": token, "token_type": "bearer", "scope": ""}
        if "application/json" in headers.get("Accept", ""):
            return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()
        return 200, {"Content-Type": "application/x-www-form-urlencoded"}, urlencode(answer).encode()

    def current_user(self, headers) -> tuple[int, dict, bytes]:
        self._stall("user")
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        user = self.tokens.get(token) if scheme.lower() in {"bearer", "token"} else None
        if user is None:
            return _json(401, {"message": "Bad credentials", "documentation_url": DOCS})
        if self.user_status != 200:
            return _json(self.user_status, {"message": "Server Error", "documentation_url": DOCS})
        return _json(200, user)

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                parts = urlsplit(self.path)
                fake.calls.append(f"GET {parts.path}")
                if parts.path == "/login/oauth/authorize":
                    self._answer(*fake.authorize(_flat(parts.query)))
                elif parts.path == "/api/v3/user":
                    self._answer(*fake.current_user(self.headers))
                else:
                    self._answer(*_json(404, {"message": "Not Found", "documentation_url": DOCS}))

            def do_POST(self):
                parts = urlsplit(self.path)
                fake.calls.append(f"POST {parts.path}")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                if parts.path == "/login/oauth/access_token":
                    form = {**_flat(parts.query), **_flat(body)}
                    self._answer(*fake.access_token(form, self.headers))
                else:
                    self._answer(*_json(404, {"message": "Not Found", "documentation_url": DOCS}))

            def _answer(self, status: int, headers: dict, body: bytes) -> None:
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test)

            def log_message(self, format, *args):
                pass

        return Handler


@pytest.fixture(name="github")
def github_fixture():
    """`github`: a fake GitHub for one test, registered with CLIENT_ID and CLIENT_SECRET (named
    apart so that the tests' `github` arguments shadow no import)."""
    fake = FakeGitHub(CLIENT_ID, CLIENT_SECRET).start()
    yield fake
    fake.stop()


def start(client, github: FakeGitHub) -> str:
    """Parley's login route: returns the GitHub authorize URL the browser is sent to."""
    response = client.get("/auth/github/login")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(f"{github.url}/login/oauth/authorize?")
    return location


def authorize(url: str) -> str:
    """The user approves at GitHub: returns Parley's callback path with code and state."""
    answer = requests.get(url, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    callback = urlsplit(answer.headers["Location"])
    assert callback.path == "/auth/github/authorized"
    return f"{callback.path}?{callback.query}"


def dance(client, github: FakeGitHub):
    """The whole dance; returns Parley's answer to the callback."""
    return client.get(authorize(start(client, github)))


def csrf_token(page: str) -> str:
    """The CSRF token of a page's (first) form, for posting it as the browser would."""
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def _flat(query: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(query).items()}


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(params)]))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _error(code: str, description: str) -> dict:
    return {
        "error": code,
        "error_description": description,
        "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors",
    }


def _json(status: int, body: dict) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(body).encode()
