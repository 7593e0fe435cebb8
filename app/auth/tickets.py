"""Signing a company's users in without a Parley password: single-use sign-in tokens its backend
asks for through the server API, and JWTs its backend signs itself.

Both end in an ordinary device session (`app.auth.session.sign_in`, method `token` or `jwt`):
listed among the user's devices, revocable, refused for banned users. What the client sends is
checked here and consumed in the transaction that opens the device session, so a token or a
JWT's `jti` is spent exactly when a session is made from it.

Refusals say as little as they can: an unknown, expired, used or badly signed token is the one
code `token_invalid` (401), so guessing learns nothing. A correctly signed JWT already used is
`token_replayed`: only the company's own backend can make one, so naming it leaks nothing and
helps the integrator find a client that retries. The reason for a refused JWT is logged.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta

import jwt
from flask import current_app
from flask_limiter.util import get_remote_address
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from app import metrics, ratelimit
from app.auth import accounts, services
from app.errors import ApiError, not_found
from app.extensions import db
from app.models import SignInToken, UsedJwt, User, utcnow
from app.validation import UNSTORABLE

# Clock difference tolerated between the company's servers and Parley's (exp, iat, nbf).
LEEWAY_SECONDS = 30
# The longest a company-signed JWT may live (exp - iat).
MAX_JWT_LIFETIME = timedelta(hours=24)
REQUIRED_CLAIMS = ["sub", "exp", "iat", "jti"]
# Longest accepted claims (the columns' sizes).
MAX_SUB = 64
MAX_JTI = 128


def _invalid() -> ApiError:
    return ApiError("token_invalid", "This sign-in token is invalid, expired or already used.", 401)


def _banned() -> ApiError:
    return ApiError("account_banned", "This account is banned.", 403)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


# --- sign-in tokens ---------------------------------------------------------------------------


def issue_sign_in_token(user_id: int, api_key_id: int | None = None) -> tuple[str, datetime]:
    """A new single-use token for `user_id`, valid `SIGN_IN_TOKEN_SECONDS`, and when it expires.
    Only its SHA-256 is stored; expired tokens are purged on the way. Administrators and the
    robot get none (`protected_account`): a session of theirs would give the key the console."""
    user = db.session.get(User, user_id)
    if user is None or user.deleted_at is not None:
        raise not_found("user")
    accounts.require_manageable(user)
    if services.is_banned(user):
        raise _banned()
    token = secrets.token_urlsafe(32)
    now = utcnow()
    expires_at = now + timedelta(seconds=current_app.config["SIGN_IN_TOKEN_SECONDS"])
    db.session.execute(delete(SignInToken).where(SignInToken.expires_at < now))
    db.session.add(
        SignInToken(
            user_id=user.id,
            token_hash=_hash(token),
            api_key_id=api_key_id,
            created_at=now,
            expires_at=expires_at,
        )
    )
    db.session.commit()
    return token, expires_at


def _redeem_token(token: str) -> User:
    """The user a live, unused token belongs to; the token is spent in this transaction. The
    conditional UPDATE comes first, so two exchanges of one token cannot both win."""
    now = utcnow()
    digest = _hash(token)
    claimed = db.session.execute(
        update(SignInToken)
        .where(
            SignInToken.token_hash == digest,
            SignInToken.used_at.is_(None),
            SignInToken.expires_at > now,
        )
        .values(used_at=now)
    ).rowcount
    if claimed != 1:
        raise _invalid()
    user_id = db.session.scalar(select(SignInToken.user_id).where(SignInToken.token_hash == digest))
    user = db.session.get(User, user_id)
    if user is None or user.deleted_at is not None:
        raise _invalid()
    accounts.require_manageable(user)  # made an administrator since the token was issued
    if services.is_banned(user):
        raise _banned()
    return user


# --- company-signed JWTs ----------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _rsa_key(pem: str):
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_public_key(pem.encode())


def _verification_key(algorithm: str | None):
    """The key for the algorithm the token names, only if that key kind is configured: HS256
    with the shared secret, RS256 with the public key, nothing else (no `none`, and never the
    RSA key text as an HMAC secret — the algorithm-confusion attack)."""
    config = current_app.config
    if algorithm == "HS256" and config.get("JWT_HS256_SECRET"):
        return config["JWT_HS256_SECRET"]
    if algorithm == "RS256" and config.get("JWT_RS256_PUBLIC_KEY"):
        return _rsa_key(config["JWT_RS256_PUBLIC_KEY"])
    return None


def _refused(reason: str) -> ApiError:
    current_app.logger.info("sign-in JWT refused: %s", reason)
    return _invalid()


def verify_jwt(raw: str) -> dict:
    """The claims of a company-signed sign-in JWT, checked: signature with the pinned algorithm,
    `sub`, `exp`, `iat`, `jti` present, not expired, issued at most 24 h before it expires, and
    `iss` / `aud` when configured. Any failure is `token_invalid`."""
    config = current_app.config
    try:
        algorithm = jwt.get_unverified_header(raw).get("alg")
    except jwt.PyJWTError as error:
        raise _refused(f"malformed ({error})") from None
    key = _verification_key(algorithm)
    if key is None:
        raise _refused(f"algorithm {str(algorithm)[:20]!r} is not configured")
    try:
        claims = jwt.decode(
            raw,
            key,
            algorithms=[algorithm],
            options={"require": REQUIRED_CLAIMS},
            leeway=LEEWAY_SECONDS,
            issuer=config.get("JWT_ISSUER"),
            audience=config.get("JWT_AUDIENCE"),
        )
    except jwt.PyJWTError as error:
        raise _refused(f"{type(error).__name__}: {error}") from None
    sub, jti, exp, iat = claims["sub"], claims["jti"], claims["exp"], claims["iat"]
    if not isinstance(sub, str) or not 0 < len(sub) <= MAX_SUB or UNSTORABLE.search(sub):
        raise _refused(f"sub must be a string of 1 to {MAX_SUB} characters")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI or UNSTORABLE.search(jti):
        raise _refused(f"jti must be a string of 1 to {MAX_JTI} characters")
    if exp - iat > MAX_JWT_LIFETIME.total_seconds():
        raise _refused("exp is more than 24 hours after iat")
    if iat > datetime.now(UTC).timestamp() + LEEWAY_SECONDS:
        raise _refused("iat is in the future")
    return claims


def _nickname(claims: dict) -> str | None:
    value = claims.get("nickname")
    if not isinstance(value, str) or UNSTORABLE.search(value):
        return None
    return value.strip()[:64] or None


def _create_external_user(external_id: str, nickname: str | None) -> User:
    """A password-less account for a JWT's first sign-in, made like any server API account
    (app/auth/accounts.py: username derived from the external id, nickname screened, announced);
    a blocked nickname from the JWT falls back to the username rather than refusing forever.
    When another sign-in of the same `sub` made it meanwhile, that account is the answer."""
    if not re.fullmatch(accounts.EXTERNAL_ID_PATTERN, external_id):
        raise ApiError(
            "invalid_input",
            "The JWT's sub is not a valid external id.",
            400,
            {"sub": accounts.EXTERNAL_ID_RULE},
        )
    row = {"external_id": external_id, "nickname": nickname}
    try:
        return accounts.create_account(row, supplied=True)
    except ApiError as error:
        if error.code != "external_id_taken":
            raise
    return accounts.get_by_external_id(external_id)


def _jwt_user(claims: dict) -> User:
    user = accounts.find_by_external_id(claims["sub"])
    if user is None and current_app.config["JWT_CREATE_USERS"]:
        user = _create_external_user(claims["sub"], _nickname(claims))
    if user is None or user.deleted_at is not None:
        raise ApiError("not_found", "No user has this external id.", 404)
    return accounts.require_manageable(user)  # a company's JWT never opens an administrator's session


def _replayed() -> ApiError:
    return ApiError("token_replayed", "This sign-in JWT (its jti) was used already.", 401)


def _redeem_jwt(raw: str) -> User:
    """The user a valid JWT names (created first if allowed); its `jti` is spent in this
    transaction (a unique row in `used_jwts`, kept until the JWT expires)."""
    claims = verify_jwt(raw)
    jti = claims["jti"]
    if db.session.get(UsedJwt, jti) is not None:
        raise _replayed()
    user = _jwt_user(claims)
    if services.is_banned(user):
        raise _banned()
    now = utcnow()
    expires_at = datetime.fromtimestamp(claims["exp"] + LEEWAY_SECONDS, UTC)
    db.session.execute(delete(UsedJwt).where(UsedJwt.expires_at < now))
    db.session.add(UsedJwt(jti=jti, user_id=user.id, used_at=now, expires_at=expires_at))
    try:
        db.session.flush()
    except IntegrityError:  # spent by a concurrent sign-in
        db.session.rollback()
        raise _replayed() from None
    return user


# --- the exchange -----------------------------------------------------------------------------


@metrics.counts_sign_in(lambda token=None, jwt_text=None: "token" if token is not None else "jwt")
def authenticate(token: str | None = None, jwt_text: str | None = None) -> tuple[User, str]:
    """The user a sign-in token or a company-signed JWT names, and the sign-in method (`token`
    or `jwt`), behind the per-address limit of password sign-ins (`LOGIN_RATE_LIMIT`). What was
    presented is spent in the session's transaction: the caller opens the device session, whose
    commit makes it final."""
    rate = current_app.config["LOGIN_RATE_LIMIT"]
    address = get_remote_address() or "unknown"
    if not ratelimit.hit(rate, "token-sign-in-ip", address):
        raise ApiError(
            "rate_limited",
            "Too many sign-in attempts; wait a moment and try again.",
            429,
            retry_after=ratelimit.retry_after(rate, "token-sign-in-ip", address),
        )
    if token is not None:
        return _redeem_token(token), "token"
    if jwt_text is not None:
        return _redeem_jwt(jwt_text), "jwt"
    raise _invalid()
