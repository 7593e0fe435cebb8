"""The admin dashboard's figures and 30-day series (app/admin/stats.py): one population of people,
UTC days, zero-filled series, bounded queries, and an endpoint only administrators may read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from app.admin import stats
from app.auth.deletion import delete_user
from app.bots.service import get_bot, open_bot
from app.chat.send import append_message
from app.extensions import db
from app.groups.services import create_group
from app.models import Message, Sanction, User
from app.moderation import services as moderation
from tests.chat_helpers import connect

# A fixed "now" (mid-day UTC), so the day boundaries of the data set do not depend on the clock.
NOW = datetime(2025, 3, 10, 12, 30, tzinfo=UTC)
TODAY = datetime(2025, 3, 10, tzinfo=UTC)


def day(offset: int, hour: int = 12, minute: int = 0, second: int = 0) -> datetime:
    """`offset` days from TODAY (negative: earlier), at the given UTC time."""
    return TODAY + timedelta(days=offset, hours=hour, minutes=minute, seconds=second)


def _created(model, row_id: int, when: datetime) -> None:
    db.session.execute(update(model).where(model.id == row_id).values(created_at=when))


def _say(user_id: int, conversation_id: int, when: datetime, text: str = "hi") -> None:
    message = append_message(conversation_id, db.session.get(User, user_id), {"type": "txt", "msg": text})
    db.session.commit()
    _created(Message, message.id, when)
    db.session.commit()


@pytest.fixture
def known(app, make_user):
    """People (an admin, a banned and a muted one, one whose mute ended), the robot, a deleted
    account, a live and a dissolved group, and messages across several days and a day boundary."""
    ids = {
        name: make_user(name, is_admin=name == "root")
        for name in ("root", "alice", "bob", "carol", "dave", "erin", "frank")
    }
    with app.app_context():
        bot = get_bot()
        ids["bot"] = bot.id
        chats = {name: open_bot(ids[name])["conversation_id"] for name in ("alice", "bob", "carol", "dave")}
        for name, when in {
            "root": day(-40),
            "alice": day(0, 0),  # registered at 00:00:00 UTC today: today
            "bob": day(-1, 23, 59, 59),  # one second before midnight: yesterday
            "carol": day(0, 8),
            "dave": day(0, 9),
            "erin": day(-5),
            "frank": day(-5),
            "bot": day(0, 1),
        }.items():
            _created(User, ids[name], when)
        db.session.commit()

        _say(ids["alice"], chats["alice"], day(0, 0))  # today's first second
        _say(ids["carol"], chats["carol"], day(0, 7))  # today, before her ban
        _say(ids["bot"], chats["alice"], day(0, 0, 0, 1))  # the robot: never counted
        _say(ids["bob"], chats["bob"], day(-1, 23, 59, 59))  # yesterday's last second
        _say(ids["alice"], chats["alice"], day(-1, 10))
        _say(ids["alice"], chats["alice"], day(-1, 11))
        _say(ids["dave"], chats["dave"], day(-1, 12))  # deleted since: still sent it
        _say(ids["bob"], chats["bob"], day(-29, 0))  # the first day of the window
        _say(ids["bob"], chats["bob"], day(-30, 23, 59, 59))  # one second before the window

        group = create_group(ids["alice"], "Live")  # its "created the group" notice: not counted
        gone = create_group(ids["bob"], "Gone")
        moderation.dissolve_group(ids["root"], gone.id, "test")
        db.session.execute(update(Message).where(Message.sender_id.is_(None)).values(created_at=day(0, 10)))
        db.session.commit()
        ids["group"] = group.id

        moderation.ban_user(ids["root"], ids["carol"], "spam")
        moderation.ban_user(ids["root"], ids["dave"], "spam")
        delete_user(ids["dave"])
        db.session.commit()
        moderation.mute_user(ids["root"], ids["erin"], "flood", None)
        moderation.mute_user(ids["root"], ids["frank"], "flood", 30)
        # Frank's mute ended an hour before NOW.
        db.session.execute(
            update(Sanction)
            .where(Sanction.user_id == ids["frank"])
            .values(expires_at=NOW - timedelta(hours=1))
        )
        db.session.commit()
    return ids


def test_the_figures_count_one_population_of_people(app, known):
    with app.app_context():
        figures = stats.dashboard(NOW)["figures"]
    assert figures == {
        "users": 6,  # root, alice, bob, carol (banned), erin, frank: not the robot, not dave
        "new_today": 2,  # alice (at 00:00:00) and carol; not bob (23:59:59), dave or the robot
        "online": 0,
        "messages_today": 2,  # alice's and carol's; not the robot's, not the system notices
        "groups": 1,
        "banned": 1,  # carol; dave's ban does not count: deleted accounts are not people
        "muted": 1,  # erin; frank's mute has ended
        "word_hits": 0,
    }
    assert figures["new_today"] <= figures["users"]


def test_the_series_have_thirty_utc_days_with_zeros_filled(app, known):
    with app.app_context():
        data = stats.dashboard(NOW)
    days = data["days"]
    assert len(days) == 30
    assert days[0] == "2025-02-09" and days[-1] == "2025-03-10"
    assert days == sorted(set(days))
    assert data["timezone"] == "UTC"
    series = data["series"]
    assert {name: len(values) for name, values in series.items()} == {
        "messages": 30,
        "active_users": 30,
        "signups": 30,
    }
    expected_messages = [0] * 30
    expected_messages[-1] = 2  # alice at 00:00:00, carol
    expected_messages[-2] = 4  # bob at 23:59:59, alice twice, dave
    expected_messages[0] = 1  # bob on the window's first day; not the day before
    assert series["messages"] == expected_messages
    expected_active = [0] * 30
    expected_active[-1] = 2
    expected_active[-2] = 3  # bob, alice, dave: alice once
    expected_active[0] = 1
    assert series["active_users"] == expected_active
    expected_signups = [0] * 30
    expected_signups[-1] = 2
    expected_signups[-2] = 1  # bob
    expected_signups[-6] = 2  # erin and frank
    assert series["signups"] == expected_signups
    # The cards are the series' last points: they cannot disagree with the chart.
    assert data["figures"]["new_today"] == series["signups"][-1]
    assert data["figures"]["messages_today"] == series["messages"][-1]


def test_an_empty_site_has_thirty_zero_days(app):
    with app.app_context():
        data = stats.dashboard(NOW)
    assert all(values == [0] * 30 for values in data["series"].values())
    assert data["figures"]["users"] == 0


def test_online_counts_people_once_whatever_their_devices(app, known, login):
    connect(app, login("alice"))
    connect(app, login("alice"))
    connect(app, login("bob"))
    with app.app_context():
        assert stats.dashboard(NOW)["figures"]["online"] == 2


def test_the_queries_do_not_grow_with_the_rows(app, known, make_user, count_queries):
    def statements() -> int:
        with count_queries() as seen, app.app_context():
            stats.dashboard(NOW)
        return len(seen)

    before = statements()
    with app.app_context():
        chat = open_bot(known["alice"])["conversation_id"]
        for offset in range(1, 12):
            _say(known["alice"], chat, day(-offset))
            _created(User, make_user(f"extra{offset}"), day(-offset))
        db.session.commit()
    assert statements() == before
    assert before <= 8


def test_the_endpoint_answers_administrators_only(app, known, client, login):
    assert client.get("/admin/stats.json").status_code == 302
    assert login("alice").get("/admin/stats.json").status_code == 403
    before = datetime.now(UTC).date().isoformat()
    response = login("root").get("/admin/stats.json")
    after = datetime.now(UTC).date().isoformat()
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    data = response.get_json()
    assert set(data["figures"]) == set(stats.FIGURES)
    assert data["figures"]["users"] == 6 and data["figures"]["banned"] == 1
    assert len(data["days"]) == 30
    assert data["days"][-1] in {before, after}  # today, UTC
    assert all(len(values) == 30 for values in data["series"].values())


def test_the_page_embeds_the_same_figures_and_the_chart_data(app, known, login):
    page = login("root").get("/admin/").get_data(as_text=True)
    assert 'data-stat="users">6<' in page
    assert 'data-stat="banned">1<' in page
    assert '<script type="application/json" id="dashboard-data">' in page
    assert "/static/vendor/chart.umd.min.js" in page
    assert "/static/js/admin/dashboard.js" in page
    assert "cdn" not in page.lower()
