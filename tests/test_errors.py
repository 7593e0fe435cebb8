"""One error shape for the API; a friendly page for HTML; generic 500s with a request id."""

from __future__ import annotations

import logging

from sqlalchemy import select

from app.extensions import db
from app.models import User


def test_unknown_api_route_is_a_json_404(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_wrong_method_is_a_json_405(client):
    response = client.get("/api/v1/auth/login")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"


def test_unknown_html_page_is_a_friendly_page(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert b"Back to Parley" in response.data


def test_unexpected_errors_roll_back_and_answer_a_generic_500(make_app, caplog):
    app = make_app()

    @app.post("/api/v1/explode")
    def explode():
        db.session.add(User(username="ghost", username_key="ghost", nickname="ghost"))
        db.session.flush()
        raise RuntimeError("secret internals: SELECT * FROM users")

    with caplog.at_level(logging.ERROR):
        response = app.test_client().post("/api/v1/explode", json={}, headers={"X-Request-ID": "req-42"})
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "req-42"
    body = response.get_json()
    assert body == {
        "error": {"code": "internal_error", "message": "Something went wrong on our side.", "fields": {}}
    }
    assert "SELECT" not in response.get_data(as_text=True)
    assert any("req-42" in record.getMessage() for record in caplog.records)
    with app.app_context():
        assert db.session.scalar(select(User).where(User.username == "ghost")) is None


def test_every_response_carries_a_request_id(client):
    assert len(client.get("/healthz").headers["X-Request-ID"]) == 32
