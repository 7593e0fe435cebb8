"""The Baidu UNIT provider, speaking UNIT's robot chat API version 3.0.

- Access token: `POST <UNIT_BASE_URL>/oauth/2.0/token?grant_type=client_credentials&client_id=<API
  key>&client_secret=<secret key>` answers `{"access_token", "expires_in", ...}` (or `{"error",
  "error_description"}`). The token is kept in the shared store until shortly before it expires,
  so every process uses one token; an expired/invalid-token error code drops it, and the call is
  made once more with a fresh one.
- Chat: `POST <UNIT_BASE_URL>/rpc/2.0/unit/service/v3/chat?access_token=...` with JSON
  `{"version": "3.0", "service_id", "session_id", "log_id", "request": {"terminal_id", "query"}}`.
  The answer is `{"error_code": 0, "result": {"session_id", "responses": [{"actions": [{"say"}]}]}}`
  or `{"error_code": N, "error_msg"}`. Each user keeps their own `session_id` (their dialogue
  context) between turns; every call gets a new `log_id`.
"""

from __future__ import annotations

import hashlib
import logging
import uuid

import requests

from app.bots.base import ProviderError
from app.models import Conversation, User

log = logging.getLogger(__name__)

OAUTH_PATH = "/oauth/2.0/token"
CHAT_PATH = "/rpc/2.0/unit/service/v3/chat"
VERSION = "3.0"
# Error codes after which a new access token is worth one more try:
# 100 invalid access_token parameter, 110 token invalid, 111 token expired.
TOKEN_ERRORS = {100, 110, 111}
# Quota: 4 cluster limit, 17 daily limit, 18 QPS limit, 19 total limit.
QUOTA_ERRORS = {4, 17, 18, 19}
# A token is refreshed this long before Baidu says it expires (at most a tenth of its life).
TOKEN_MARGIN_SECONDS = 3600
# A user's dialogue starts afresh after this long without a message to the robot.
SESSION_TTL_SECONDS = 3600


class UnitProvider:
    name = "unit"

    def __init__(self, base_url: str, api_key: str, secret_key: str, service_id: str, store, timeout: float):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.secret_key = secret_key
        self.service_id = service_id
        self.store = store
        self.timeout = timeout
        self.token_key = "unit:token:" + hashlib.sha256(api_key.encode()).hexdigest()[:16]

    # --- the access token ----------------------------------------------------------------

    def access_token(self) -> str:
        """The shared token, fetched from Baidu when there is none (or it is about to expire)."""
        token = self.store.get(self.token_key)
        if token:
            return token
        params = {
            "grant_type": "client_credentials",
            "client_id": self.api_key,
            "client_secret": self.secret_key,
        }
        data = self._post(OAUTH_PATH, params=params)
        token, expires_in = data.get("access_token"), data.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int) or expires_in <= 0:
            error = data.get("error_description") or data.get("error") or "no access_token in the answer"
            raise ProviderError(f"UNIT refused the access token request: {error}")
        margin = min(TOKEN_MARGIN_SECONDS, expires_in // 10)
        self.store.set(self.token_key, token, expires_in - margin)
        return token

    # --- chatting --------------------------------------------------------------------------

    def reply(self, user: User, conversation: Conversation, text: str) -> str:
        data = self._chat(self.access_token(), user, text)
        if data.get("error_code") in TOKEN_ERRORS:
            log.info("UNIT turned the access token down (%s); fetching a new one", data.get("error_code"))
            self.store.delete(self.token_key)
            data = self._chat(self.access_token(), user, text)
        return self._answer(user, data)

    def _session_key(self, user: User) -> str:
        return f"unit:session:{user.id}"

    def _chat(self, token: str, user: User, text: str) -> dict:
        body = {
            "version": VERSION,
            "service_id": self.service_id,
            "session_id": self.store.get(self._session_key(user)) or "",
            "log_id": uuid.uuid4().hex,
            "request": {"terminal_id": f"parley-{user.id}", "query": text},
        }
        return self._post(CHAT_PATH, params={"access_token": token}, json=body)

    def _answer(self, user: User, data: dict) -> str:
        code = data.get("error_code", 0)
        if code != 0:
            kind = "quota exhausted" if code in QUOTA_ERRORS else "error"
            raise ProviderError(f"UNIT {kind} {code}: {data.get('error_msg', '')}".rstrip())
        result = data.get("result")
        try:
            say = result["responses"][0]["actions"][0]["say"]
        except (KeyError, IndexError, TypeError):
            say = None
        if not isinstance(say, str) or not say.strip():
            raise ProviderError("UNIT's answer has no responses[0].actions[0].say")
        session_id = result.get("session_id")
        if isinstance(session_id, str) and session_id:
            self.store.set(self._session_key(user), session_id, SESSION_TTL_SECONDS)
        return say

    def _post(self, path: str, **kwargs) -> dict:
        try:
            response = requests.post(self.base_url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as error:
            raise ProviderError(f"UNIT could not be reached: {error}") from None
        try:
            data = response.json()
        except ValueError:
            raise ProviderError(f"UNIT answered HTTP {response.status_code} without JSON") from None
        if not isinstance(data, dict):
            raise ProviderError("UNIT's answer is not a JSON object")
        return data


def from_config(config, store) -> UnitProvider | None:
    """The UNIT provider when its three credentials are configured, else None."""
    keys = (config["UNIT_API_KEY"], config["UNIT_SECRET_KEY"], config["UNIT_SERVICE_ID"])
    if not all(keys):
        return None
    return UnitProvider(config["UNIT_BASE_URL"], *keys, store=store, timeout=config["BOT_REPLY_TIMEOUT"])
