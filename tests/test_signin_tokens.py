"""Signing a company's users in without a password: single-use sign-in tokens from the server API
and JWTs the company signs itself, exchanged at POST /api/v1/auth/token for device sessions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
import uuid
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select, update

from app.extensions import db
from app.models import DeviceSession, SignInToken, UsedJwt, User, utcnow
from app.moderation import rights
from app.moderation import services as moderation
from config import Config, ConfigError
from tests.chat_helpers import connect
from tests.conftest import server_env

SECRET = "s" * 24 + "-shared-secret-of-the-company"
_addresses = itertools.count(1)


@pytest.fixture(scope="module")
def rsa_keys():
    """A company's RSA key pair: (private key, public key PEM text)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


@pytest.fixture
def jwt_config(app, monkeypatch, rsa_keys):
    """Both key kinds configured, users not created on first sign-in (tests change it)."""
    monkeypatch.setitem(app.config, "JWT_HS256_SECRET", SECRET)
    monkeypatch.setitem(app.config, "JWT_RS256_PUBLIC_KEY", rsa_keys[1])
    monkeypatch.setitem(app.config, "JWT_CREATE_USERS", False)
    return app.config


def device_client(app):
    """A new browser/app, from its own address (the exchange is limited per address)."""
    number = next(_addresses)
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"172.16.{number // 250}.{number % 250 + 1}"
    return client


def exchange(app, client=None, **body):
    client = client or device_client(app)
    return client.post("/api/v1/auth/token", json=body, headers={"User-Agent": "CompanyApp/1.0 (iPhone)"})


def code_of(response) -> str:
    return response.get_json()["error"]["code"]


def issue(client, api_key, user_id: int):
    response = client.post(
        f"/api/server/v1/users/{user_id}/sign-in-tokens", json={}, headers=api_key("users")
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def set_external_id(app, user_id: int, external_id: str) -> None:
    with app.app_context():
        db.session.get(User, user_id).external_id = external_id
        db.session.commit()


def ban(app, user_id: int) -> None:
    with app.app_context():
        admin = db.session.scalar(select(User.id).where(User.is_admin.is_(True)))
        moderation.ban_user(admin, user_id, "spam", None)


def devices(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(DeviceSession.id)))


# --- sign-in tokens ---------------------------------------------------------------------------


def test_a_sign_in_token_opens_a_device_session_like_a_password(app, client, api_key, make_user, login):
    alice = make_user("alice")
    answer = issue(client, api_key, alice)
    assert len(answer["token"]) >= 40
    expires = answer["expires_at"]
    assert expires.endswith("Z")
    phone = device_client(app)
    response = exchange(app, phone, token=answer["token"])
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["user"]["username"] == "alice"
    assert body["device"]["method"] == "token"
    assert body["device"]["name"] == "iPhone"
    # Listed among the user's devices, seen from another device too.
    laptop = login("alice")
    listed = laptop.get("/api/v1/auth/devices").get_json()["devices"]
    assert {"token", "password"} == {device["method"] for device in listed}
    # The socket connects with that session.
    device = connect(app, phone)
    assert device.user_id == alice
    # Revocable through the ordinary device routes.
    token_device = next(device for device in listed if device["method"] == "token")
    assert laptop.delete(f"/api/v1/auth/devices/{token_device['id']}").status_code == 204
    assert phone.get("/api/v1/auth/me").status_code == 401


def test_only_the_hash_of_a_sign_in_token_is_stored_with_its_lifetime(app, client, api_key, make_user):
    alice = make_user("alice")
    token = issue(client, api_key, alice)["token"]
    with app.app_context():
        row = db.session.scalar(select(SignInToken))
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert row.user_id == alice and row.api_key_id is not None and row.used_at is None
        assert timedelta(seconds=295) < row.expires_at - utcnow() <= timedelta(seconds=300)


def test_a_sign_in_token_works_once(app, client, api_key, make_user):
    token = issue(client, api_key, make_user("alice"))["token"]
    assert exchange(app, token=token).status_code == 200
    again = exchange(app, token=token)
    assert (again.status_code, code_of(again)) == (401, "token_invalid")
    assert devices(app) == 1


def test_an_expired_sign_in_token_is_refused(app, client, api_key, make_user):
    token = issue(client, api_key, make_user("alice"))["token"]
    with app.app_context():
        db.session.execute(update(SignInToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    response = exchange(app, token=token)
    assert (response.status_code, code_of(response)) == (401, "token_invalid")
    assert devices(app) == 0


def test_an_unknown_token_gets_the_same_answer_as_a_used_one(app):
    response = exchange(app, token="not-a-token-anyone-issued")
    assert (response.status_code, code_of(response)) == (401, "token_invalid")
    assert (
        response.get_json()["error"]["message"] == "This sign-in token is invalid, expired or already used."
    )


def test_banned_users_get_no_token_and_cannot_use_one(app, client, api_key, make_user):
    make_user("root", is_admin=True)
    alice = make_user("alice")
    token = issue(client, api_key, alice)["token"]
    ban(app, alice)
    refused = exchange(app, token=token)
    assert (refused.status_code, code_of(refused)) == (403, "account_banned")
    issued = client.post(f"/api/server/v1/users/{alice}/sign-in-tokens", json={}, headers=api_key("users"))
    assert (issued.status_code, code_of(issued)) == (403, "account_banned")
    assert devices(app) == 0


def test_no_token_for_unknown_deleted_admin_or_robot_users(app, client, api_key, make_user):
    gone = make_user("gone")
    robot = make_user("robot", is_bot=True)
    admin = make_user("root", is_admin=True)
    with app.app_context():
        db.session.get(User, gone).deleted_at = utcnow()
        db.session.commit()
    for user_id, expected in ((999_999, (404, "not_found")), (gone, (404, "not_found"))) + tuple(
        (user_id, (409, "protected_account")) for user_id in (robot, admin)
    ):
        response = client.post(
            f"/api/server/v1/users/{user_id}/sign-in-tokens", json={}, headers=api_key("users")
        )
        assert (response.status_code, code_of(response)) == expected
    with app.app_context():
        assert db.session.scalar(select(func.count(SignInToken.id))) == 0


def test_a_token_of_a_user_made_admin_since_is_refused(app, client, api_key, make_user):
    alice = make_user("alice")
    token = issue(client, api_key, alice)["token"]
    with app.app_context():
        db.session.get(User, alice).admin_role_id = rights.role_named("support").id
        db.session.commit()
    response = exchange(app, token=token)
    assert (response.status_code, code_of(response)) == (409, "protected_account")
    assert devices(app) == 0


def test_the_server_route_validates_its_body(client, api_key, make_user):
    alice = make_user("alice")
    headers = api_key("users")
    path = f"/api/server/v1/users/{alice}/sign-in-tokens"
    assert code_of(client.post(path, json={"user_id": 2}, headers=headers)) == "invalid_input"
    assert code_of(client.post(path, data="x", headers=headers)) == "invalid_json"


def test_expired_sign_in_tokens_are_purged_when_new_ones_are_made(app, client, api_key, make_user):
    alice = make_user("alice")
    issue(client, api_key, alice)
    with app.app_context():
        db.session.execute(update(SignInToken).values(expires_at=utcnow() - timedelta(minutes=1)))
        db.session.commit()
    fresh = issue(client, api_key, alice)["token"]
    with app.app_context():
        hashes = list(db.session.scalars(select(SignInToken.token_hash)))
    assert hashes == [hashlib.sha256(fresh.encode()).hexdigest()]


@pytest.mark.parametrize(
    "body",
    [{}, {"token": "a", "jwt": "b.c.d"}, {"token": ""}, {"token": 5}, {"token": "a", "device": "x"}],
)
def test_the_exchange_takes_exactly_one_token(app, body):
    response = exchange(app, **body)
    assert (response.status_code, code_of(response)) == (400, "invalid_input")
    assert devices(app) == 0


def test_the_exchange_is_rate_limited_per_address(app):
    client = device_client(app)  # LOGIN_RATE_LIMIT is 5 per minute in tests
    codes = [code_of(exchange(app, client, token=f"guess-{n}")) for n in range(5)]
    assert codes == ["token_invalid"] * 5
    refused = exchange(app, client, token="guess-6")
    assert (refused.status_code, code_of(refused)) == (429, "rate_limited")
    assert int(refused.headers["Retry-After"]) >= 1
    assert exchange(app, token="from elsewhere").status_code == 401


def test_the_browser_entry_page_keeps_the_token_out_of_the_url(client):
    page = client.get("/login/token")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<script type="module" src="/static/js/token-login.js' in html
    assert "<script>" not in html  # no inline script: the CSP allows none
    assert "script-src 'self';" in page.headers["Content-Security-Policy"]
    with client.get("/static/js/token-login.js") as response:
        script = response.get_data(as_text=True)
    assert "history.replaceState" in script and "/api/v1/auth/token" in script
    assert "innerHTML" not in script


# --- company-signed JWTs ----------------------------------------------------------------------


def claims(**overrides):
    now = int(time.time())
    values = {"sub": "crm-42", "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex, **overrides}
    return {name: value for name, value in values.items() if value is not None}


def hs256(secret: str = SECRET, **overrides) -> str:
    return jwt.encode(claims(**overrides), secret, algorithm="HS256")


def rs256(private_key, **overrides) -> str:
    return jwt.encode(claims(**overrides), private_key, algorithm="RS256")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict, payload: dict, key: bytes | None) -> str:
    """A JWT built by hand (PyJWT refuses to make the bad ones)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest()) if key else ""
    return f"{signing_input}.{signature}"


@pytest.fixture
def carol(app, make_user):
    user_id = make_user("carol")
    set_external_id(app, user_id, "crm-42")
    return user_id


def test_an_hs256_jwt_signs_the_user_with_that_external_id_in(app, jwt_config, carol):
    response = exchange(app, jwt=hs256())
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["user"]["id"] == carol
    assert response.get_json()["device"]["method"] == "jwt"


def test_an_rs256_jwt_signs_the_user_in(app, jwt_config, carol, rsa_keys, login):
    phone = device_client(app)
    response = exchange(app, phone, jwt=rs256(rsa_keys[0]))
    assert response.status_code == 200, response.get_json()
    assert connect(app, phone).user_id == carol
    with app.app_context():
        used = db.session.scalar(select(UsedJwt))
        assert used.user_id == carol


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda keys: hs256(exp=int(time.time()) - 120, iat=int(time.time()) - 400), id="expired"
        ),
        pytest.param(lambda keys: hs256(exp=int(time.time()) + 90_000), id="lives-over-24h"),
        pytest.param(
            lambda keys: hs256(iat=int(time.time()) + 3600, exp=int(time.time()) + 3700), id="iat-future"
        ),
        pytest.param(lambda keys: hs256(secret="another-company-secret-0123456789ab"), id="wrong-secret"),
        pytest.param(
            lambda keys: rs256(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            id="wrong-rsa-key",
        ),
        pytest.param(lambda keys: jwt.encode(claims(), None, algorithm="none"), id="alg-none"),
        pytest.param(
            lambda keys: forged({"alg": "none", "typ": "JWT"}, claims(), None), id="alg-none-by-hand"
        ),
        pytest.param(
            lambda keys: forged({"alg": "HS256", "typ": "JWT"}, claims(), keys[1].encode()),
            id="hs256-signed-with-the-rsa-public-key",
        ),
        pytest.param(lambda keys: jwt.encode(claims(), SECRET * 2, algorithm="HS512"), id="hs512"),
        pytest.param(lambda keys: hs256(jti=None), id="no-jti"),
        pytest.param(lambda keys: hs256(iat=None), id="no-iat"),
        pytest.param(lambda keys: hs256(exp=None), id="no-exp"),
        pytest.param(lambda keys: hs256(sub=None), id="no-sub"),
        pytest.param(lambda keys: hs256(sub=42), id="sub-not-a-string"),
        pytest.param(lambda keys: hs256(aud="someone-else"), id="unexpected-audience"),
        pytest.param(lambda keys: "not.a.jwt", id="garbage"),
    ],
)
def test_bad_jwts_are_refused_as_token_invalid(app, jwt_config, carol, rsa_keys, make):
    response = exchange(app, jwt=make(rsa_keys))
    assert (response.status_code, code_of(response)) == (401, "token_invalid")
    assert devices(app) == 0


def test_the_rsa_public_key_is_never_an_hmac_secret_even_without_a_shared_secret(
    app, jwt_config, carol, rsa_keys
):
    jwt_config["JWT_HS256_SECRET"] = None
    confused = forged({"alg": "HS256", "typ": "JWT"}, claims(), rsa_keys[1].encode())
    assert code_of(exchange(app, jwt=confused)) == "token_invalid"
    assert code_of(exchange(app, jwt=hs256())) == "token_invalid"  # HS256 is off altogether
    assert exchange(app, jwt=rs256(rsa_keys[0])).status_code == 200


def test_a_jwt_is_used_once(app, jwt_config, carol):
    token = hs256()
    assert exchange(app, jwt=token).status_code == 200
    again = exchange(app, jwt=token)
    assert (again.status_code, code_of(again)) == (401, "token_replayed")
    assert exchange(app, jwt=hs256()).status_code == 200  # a new jti is fine
    assert devices(app) == 2


def test_used_jtis_are_kept_until_the_jwt_expires_then_purged(app, jwt_config, carol):
    with app.app_context():
        old = utcnow() - timedelta(hours=1)
        db.session.add(UsedJwt(jti="old-one", user_id=carol, used_at=old, expires_at=old))
        db.session.commit()
    exp = int(time.time()) + 600
    assert exchange(app, jwt=hs256(exp=exp, jti="new-one")).status_code == 200
    with app.app_context():
        rows = {row.jti: row.expires_at for row in db.session.scalars(select(UsedJwt))}
    assert list(rows) == ["new-one"]
    assert rows["new-one"].timestamp() >= exp  # never purged while the JWT could still be accepted


def test_an_unknown_sub_is_refused_unless_users_are_created(app, jwt_config):
    refused = exchange(app, jwt=hs256(sub="crm-7"))
    assert (refused.status_code, code_of(refused)) == (404, "not_found")
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 0
    jwt_config["JWT_CREATE_USERS"] = True
    made = exchange(app, jwt=hs256(sub="crm-7", nickname="  Dora Chen  "))
    assert made.status_code == 200, made.get_json()
    user = made.get_json()["user"]
    assert user["nickname"] == "Dora Chen"
    with app.app_context():
        row = db.session.get(User, user["id"])
        assert (row.external_id, row.password_hash) == ("crm-7", None)
    # The next sign-in finds the same account.
    assert exchange(app, jwt=hs256(sub="crm-7")).get_json()["user"]["id"] == user["id"]
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 1


def test_a_created_user_never_takes_over_an_existing_username(app, jwt_config, make_user):
    jwt_config["JWT_CREATE_USERS"] = True
    existing = make_user("crm-9")
    made = exchange(app, jwt=hs256(sub="crm-9")).get_json()["user"]
    assert made["id"] != existing
    assert made["username"] == "crm-9-2"


def test_a_deleted_users_jwt_is_refused_and_creates_nobody(app, jwt_config, carol):
    jwt_config["JWT_CREATE_USERS"] = True
    with app.app_context():
        db.session.get(User, carol).deleted_at = utcnow()
        db.session.commit()
    assert code_of(exchange(app, jwt=hs256())) == "not_found"
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 1


def test_an_administrators_jwt_is_refused(app, jwt_config, make_user):
    root = make_user("root", is_admin=True)
    set_external_id(app, root, "crm-42")
    response = exchange(app, jwt=hs256())
    assert (response.status_code, code_of(response)) == (409, "protected_account")
    assert devices(app) == 0


def test_a_blocked_nickname_from_a_jwt_falls_back_instead_of_refusing(app, jwt_config, make_user):
    from app.wordfilter import services as words

    jwt_config["JWT_CREATE_USERS"] = True
    root = make_user("root", is_admin=True)
    with app.app_context():
        words.create_list(root, "blocked", "reject", True, "badword")
    made = exchange(app, jwt=hs256(sub="crm-8", nickname="the badword"))
    assert made.status_code == 200, made.get_json()
    assert made.get_json()["user"]["nickname"] == "crm-8"
    # The username standing in is blocked too: the last resort.
    worse = exchange(app, jwt=hs256(sub="badword-1", nickname="badword"))
    assert worse.status_code == 200, worse.get_json()
    assert worse.get_json()["user"]["nickname"] == "User"


def test_a_blocked_github_nickname_falls_back_to_the_login(app, make_user):
    from app.auth import services as auth
    from app.wordfilter import services as words

    root = make_user("root", is_admin=True)
    with app.app_context():
        words.create_list(root, "blocked", "reject", True, "badword")
        user = auth.create_user_from_identity("github", "101", "octo", "badword fan", None)
        assert (user.username, user.nickname) == ("octo", "octo")
        user = auth.create_user_from_identity("github", "102", "badword", None, None)
        assert (user.username, user.nickname) == ("badword", "User")


def test_a_banned_users_jwt_is_refused(app, jwt_config, carol, make_user):
    make_user("root", is_admin=True)
    ban(app, carol)
    response = exchange(app, jwt=hs256())
    assert (response.status_code, code_of(response)) == (403, "account_banned")
    assert devices(app) == 0


def test_issuer_and_audience_are_checked_when_configured(app, jwt_config, carol, monkeypatch):
    monkeypatch.setitem(app.config, "JWT_ISSUER", "https://crm.example.com")
    monkeypatch.setitem(app.config, "JWT_AUDIENCE", "parley")
    assert code_of(exchange(app, jwt=hs256())) == "token_invalid"
    assert code_of(exchange(app, jwt=hs256(iss="https://evil.example.com", aud="parley"))) == "token_invalid"
    assert code_of(exchange(app, jwt=hs256(iss="https://crm.example.com", aud="other"))) == "token_invalid"
    assert exchange(app, jwt=hs256(iss="https://crm.example.com", aud="parley")).status_code == 200


def test_jwts_are_refused_when_no_key_is_configured(app, carol):
    assert code_of(exchange(app, jwt=hs256())) == "token_invalid"


# --- settings ---------------------------------------------------------------------------------


def test_jwt_settings_are_checked_at_start(database_url, instance_path, tmp_path, rsa_keys):
    def load(**env):
        return Config.from_env(server_env(database_url, instance_path, **env))

    pem = rsa_keys[1]
    path = tmp_path / "company.pem"
    path.write_text(pem)
    assert pem == load(JWT_RS256_PUBLIC_KEY=str(path)).JWT_RS256_PUBLIC_KEY
    assert pem == load(JWT_RS256_PUBLIC_KEY=pem.replace("\n", "\\n")).JWT_RS256_PUBLIC_KEY
    defaults = load()
    assert (defaults.SIGN_IN_TOKEN_SECONDS, defaults.JWT_CREATE_USERS, defaults.JWT_HS256_SECRET) == (
        300,
        False,
        None,
    )
    bad = {
        "JWT_HS256_SECRET": "too-short",
        "JWT_RS256_PUBLIC_KEY": str(tmp_path / "missing.pem"),
        "SIGN_IN_TOKEN_SECONDS": "5",
        "JWT_CREATE_USERS": "maybe",
    }
    for name, value in bad.items():
        with pytest.raises(ConfigError) as caught:
            load(**{name: value})
        assert caught.value.name == name
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()  # noqa: S505 (refused: too small)
    small_pem = small.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for text in ("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----", small_pem.decode()):
        with pytest.raises(ConfigError, match="JWT_RS256_PUBLIC_KEY"):
            load(JWT_RS256_PUBLIC_KEY=text)


def test_a_sub_that_is_no_valid_external_id_creates_nobody(app, jwt_config):
    jwt_config["JWT_CREATE_USERS"] = True
    response = exchange(app, jwt=hs256(sub="has a space"))
    assert (response.status_code, code_of(response)) == (400, "invalid_input")
    assert "sub" in response.get_json()["error"]["fields"]
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 0


def race(app, count: int, **body) -> list[str]:
    """`count` exchanges of the same body at the same moment, each in its own thread and
    transaction; returns what each got (a method, or an error code)."""
    import threading

    from app.auth import tickets
    from app.auth.services import start_device_session
    from app.errors import ApiError

    barrier = threading.Barrier(count)
    results: list[str] = []

    def attempt(number: int) -> None:
        with app.test_request_context(environ_base={"REMOTE_ADDR": f"198.18.0.{number + 1}"}):
            barrier.wait()
            try:
                user, method = tickets.authenticate(body.get("token"), body.get("jwt"))
                start_device_session(user, "race", None, method)
                results.append(method)
            except ApiError as error:
                db.session.rollback()
                results.append(error.code)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt, args=(number,)) for number in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return sorted(results)


def test_a_token_exchanged_twice_at_once_opens_one_session(app, client, api_key, make_user):
    token = issue(client, api_key, make_user("alice"))["token"]
    assert race(app, 4, token=token) == ["token", "token_invalid", "token_invalid", "token_invalid"]
    assert devices(app) == 1


@pytest.mark.postgresql
def test_a_jwt_replayed_at_the_same_moment_opens_one_session(app, jwt_config, carol):
    assert race(app, 4, jwt=hs256()) == ["jwt", "token_replayed", "token_replayed", "token_replayed"]
    assert devices(app) == 1
