"""Every list of the admin console opens, and opens sorted by each column it offers to sort by
(a column the database cannot order — JSON on PostgreSQL — must not be offered)."""

from __future__ import annotations

from flask_admin.model import BaseModelView

from app.extensions import db
from app.models import AuditLog


def test_every_model_list_sorts_by_each_sortable_column(app, make_user, login):
    root_id = make_user("root", is_admin=True)
    with app.app_context():
        # A row with JSON in it, so an ORDER BY on that column would be executed for real.
        db.session.add(AuditLog(admin_id=root_id, action="seen", target_type="user", details={"a": 1}))
        db.session.commit()
    admin = login("root")
    views = [view for view in app.extensions["admin"][0]._views if isinstance(view, BaseModelView)]
    assert views
    for view in views:
        url = f"/admin/{view.endpoint}/"
        assert admin.get(url).status_code == 200, url
        with app.test_request_context():
            sortable = view.get_sortable_columns()
        for index, _ in enumerate(sortable):
            for descending in ("0", "1"):
                page = admin.get(url, query_string={"sort": index, "desc": descending})
                assert page.status_code == 200, (url, index, descending)
