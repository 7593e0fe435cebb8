"""The REST contract: `/api/openapi.json`, generated from the routes (app/openapi/generate.py),
and `/api/docs`, Swagger UI from the vendored swagger-ui-dist (never a CDN: Parley runs on
closed networks). Both public: they describe routes, they hold no data."""

from __future__ import annotations

import json

from flask import Blueprint, Flask, current_app, render_template, request

from app.openapi.generate import build

bp = Blueprint("openapi", __name__)


def document_json(app: Flask) -> bytes:
    """The document, built once per application (the routes do not change while it runs)."""
    cached = app.extensions.get("parley.openapi")
    if cached is None:
        document = build(app)
        if document.problems:
            app.logger.warning(
                "OpenAPI: %d routes are not fully described: %s", len(document.problems), document.problems
            )
        cached = json.dumps(document.spec, ensure_ascii=False).encode()
        app.extensions["parley.openapi"] = cached
    return cached


@bp.get("/api/openapi.json")
def document():
    """This OpenAPI 3.1 document, generated from the routes and the models they validate with."""
    response = current_app.response_class(document_json(current_app), mimetype="application/json")
    response.cache_control.no_cache = True
    response.add_etag()
    return response.make_conditional(request)


@bp.get("/api/docs")
def docs():
    """The interactive documentation of this API (Swagger UI), an HTML page."""
    # Served under the usual strict policy (app/headers.py): Swagger UI needs no inline script
    # (our initialiser is a file) and sets its styles through the CSSOM, which `style-src
    # 'self'` allows; tests/e2e/test_api_docs_browser.py watches for violations.
    return render_template("api_docs.html")
