"""The admin dashboard in Chromium (desktop and phone): the chart (Chart.js, vendored) with three
series over 30 days, axes and tooltips, readable on light and dark pages; the figures of a known
data set, refreshed; and the sanction forms on a 390-px phone, nothing cut, no sideways scroll."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from app.chat.send import append_message
from app.extensions import db
from app.models import User
from tests.conftest import PASSWORD
from tests.e2e.conftest import DESKTOP, PHONE

# The chart's Chart.js instance, as the page built it.
CHART = "Chart.getChart(document.getElementById('activity-chart'))"

# Every rendered element whose box sticks out of the viewport on the right (none may: the page
# would scroll sideways or cut it).
OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  return [...document.querySelectorAll('body *')]
    .filter((node) => {
      const box = node.getBoundingClientRect();
      return box.width > 0 && box.height > 0 && box.right > width + 0.5;
    })
    .map((node) => `${node.tagName.toLowerCase()}.${node.className} ${node.getBoundingClientRect().right}`);
}"""

# Labels whose text is cut (wider than their box), and inputs whose placeholder does not fit.
CUT = """(form) => {
  const cut = [];
  for (const label of form.querySelectorAll('label')) {
    if (label.scrollWidth > label.clientWidth) cut.push(`label ${label.textContent}`);
  }
  const context = document.createElement('canvas').getContext('2d');
  for (const input of form.querySelectorAll('input[placeholder]')) {
    const style = getComputedStyle(input);
    context.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    if (context.measureText(input.placeholder).width > room) cut.push(`placeholder ${input.placeholder}`);
  }
  return cut;
}"""

# Contrast ratios (WCAG) of the chart's tick and legend text and of each series' colour against
# the page's background.
CONTRAST = (
    """() => {
  const chart = CHART;
  const probe = document.createElement('span');
  document.body.append(probe);
  const channels = (colour) => {
    probe.style.color = colour;
    return (getComputedStyle(probe).color.match(/[\\d.]+/g) || []).slice(0, 3).map(Number);
  };
  const lum = (colour) => {
    const [r, g, b] = channels(colour).map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const background = getComputedStyle(document.body).backgroundColor;
  const ratio = (colour) => {
    const [x, y] = [lum(colour), lum(background)].sort((p, q) => q - p);
    return (x + 0.05) / (y + 0.05);
  };
  const result = {
    ticks: ratio(chart.options.scales.y.ticks.color),
    legend: ratio(chart.options.plugins.legend.labels.color),
    series: chart.data.datasets.map((dataset) => ratio(dataset.borderColor)),
  };
  probe.remove();
  return result;
}"""
).replace("CHART", CHART)


@pytest.fixture
def site(app, make_user):
    """An administrator and two people, the robot, and one message today from Alice."""
    ids = {
        name: make_user(name, nickname=name.capitalize(), is_admin=name == "root")
        for name in ("root", "alice", "bob")
    }
    with app.app_context():
        from app.bots.service import get_bot, open_bot

        get_bot()
        chat = open_bot(ids["alice"])["conversation_id"]
        append_message(chat, db.session.get(User, ids["alice"]), {"type": "txt", "msg": "hello"})
        db.session.commit()
    return ids


def sign_in_console(page: Page, path: str = "/admin/") -> Page:
    page.goto(f"/login?next={path}")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    return page


def chart_ready(page: Page) -> None:
    page.wait_for_function(f"() => window.Chart && {CHART} && {CHART}.data.datasets.length === 3")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_chart_renders_with_axes_tooltips_and_the_known_figures(new_page, site, viewport):
    console = sign_in_console(new_page(viewport))
    expect(console.locator("#activity-chart")).to_be_visible()
    chart_ready(console)
    shape = console.evaluate(
        f"""() => {{
        const chart = {CHART};
        return {{
          labels: chart.data.labels.length,
          datasets: chart.data.datasets.map((d) => [d.label, d.data.length]),
          today: chart.data.datasets.map((d) => d.data[d.data.length - 1]),
          axes: Object.keys(chart.scales).sort(),
          ticks: chart.scales.y.ticks.map((t) => t.label).length,
          legend: chart.options.plugins.legend.display !== false,
          width: chart.width,
        }};
    }}"""
    )
    assert shape["labels"] == 30
    assert shape["datasets"] == [
        ["Messages per day", 30],
        ["Active users per day", 30],
        ["Sign-ups per day", 30],
    ]
    assert shape["today"] == [1, 1, 3]  # Alice's message; Alice; root, alice, bob (not the robot)
    assert shape["axes"] == ["people", "x", "y"]
    assert shape["ticks"] >= 2 and shape["legend"]
    assert shape["width"] <= viewport["width"]

    figures = {"users": "3", "new_today": "3", "online": "0", "messages_today": "1", "groups": "0"}
    for key, value in figures.items():
        expect(console.locator(f'[data-stat="{key}"]')).to_have_text(value)
    expect(console.locator('[data-stat="banned"]')).to_have_text("0")
    console.locator('[data-dashboard="definitions"] summary').click()
    expect(console.locator('[data-definition="new_today"]')).to_contain_text("since 00:00 UTC")
    expect(console.locator('[data-definition="users"]')).to_contain_text("not the robot")

    canvas = console.locator("#activity-chart")
    box = canvas.bounding_box()
    # A pointer moving over the last days (Chart.js handles moves once per animation frame).
    canvas.hover(position={"x": box["width"] * 0.85, "y": box["height"] / 2})
    canvas.hover(position={"x": box["width"] * 0.9, "y": box["height"] / 2})
    console.wait_for_function(f"() => {CHART}.tooltip.getActiveElements().length === 3")
    assert console.evaluate(f"() => {CHART}.tooltip.opacity") > 0

    console.locator('[data-dashboard="numbers"] summary').click()
    expect(console.locator('[data-table="activity"] tbody tr')).to_have_count(30)
    today = console.locator('[data-table="activity"] tbody tr').first
    expect(today.locator('[data-series="messages"]')).to_have_text("1")
    expect(today.locator('[data-series="signups"]')).to_have_text("3")
    assert console.evaluate(OVERFLOWING) == []


def test_online_now_follows_open_chat_pages_on_refresh(new_page, site, sign_in):
    console = sign_in_console(new_page(DESKTOP))
    chart_ready(console)
    expect(console.locator('[data-stat="online"]')).to_have_text("0")
    sign_in(new_page(PHONE), "alice")
    # Alice's socket connects a moment after her page shows: refresh until the console sees it.
    online = console.locator('[data-stat="online"]')
    for _ in range(15):
        console.get_by_role("button", name="Refresh").click()
        try:
            expect(online).to_have_text("1", timeout=1_000)
            break
        except AssertionError:
            continue
    expect(online).to_have_text("1")
    expect(console.locator('[data-dashboard="as-of"]')).to_contain_text("UTC")
    expect(console.locator('[data-dashboard="error"]')).to_have_text("")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_chart_is_readable_on_light_and_dark_pages(new_page, site, scheme):
    console = sign_in_console(new_page(DESKTOP, color_scheme=scheme))
    chart_ready(console)
    contrast = console.evaluate(CONTRAST)
    assert contrast["ticks"] >= 4.5 and contrast["legend"] >= 4.5, contrast
    assert min(contrast["series"]) >= 3, contrast
    # A dark page (as a dark theme of the console would paint it): the chart takes its colours.
    console.evaluate(
        "() => { document.body.style.backgroundColor = '#15171a'; document.body.style.color = '#e6e6e6'; }"
    )
    console.emulate_media(color_scheme="light" if scheme == "dark" else "dark")
    console.wait_for_function(f"() => {CHART}.options.scales.y.ticks.color === 'rgb(230, 230, 230)'")
    contrast = console.evaluate(CONTRAST)
    assert contrast["ticks"] >= 4.5 and contrast["legend"] >= 4.5, contrast
    assert min(contrast["series"]) >= 3, contrast


def test_the_stats_endpoint_refuses_people_who_are_not_administrators(
    new_page, site, sign_in, browser_problems
):
    browser_problems.allow(r"^http GET \S+/admin/stats\.json 403$")
    page = sign_in(new_page(DESKTOP), "alice")
    assert page.request.get("/admin/stats.json").status == 403


def test_the_sanction_forms_fit_a_phone(new_page, site, sign_in):
    # A device of Alice's, so that her page lists one (its long "last seen" must wrap).
    sign_in(new_page(PHONE), "alice").close()
    console = sign_in_console(new_page(PHONE), f"/admin/user/details/?id={site['alice']}")
    expect(console.locator(".admin-details table").last.locator("td").first).to_be_visible()
    ban = console.locator("form[action$='/ban']")
    mute = console.locator("form[action$='/mute']")
    expect(ban.get_by_label("Hours")).to_be_visible()
    expect(ban.get_by_label("Hours")).to_have_attribute("placeholder", "e.g. 24")
    expect(mute.get_by_label("Minutes")).to_have_attribute("placeholder", "e.g. 30")
    expect(ban.get_by_text("Empty: banned until lifted.")).to_be_visible()
    expect(mute.get_by_text("Empty: muted until lifted.")).to_be_visible()
    for form in console.locator("form.admin-action").all():
        assert form.evaluate(CUT) == []
    assert console.evaluate(
        "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    assert console.evaluate(OVERFLOWING) == []

    # The short form still works: a 2-hour ban, and the page says until when.
    ban.get_by_label("Reason").fill("spam")
    ban.get_by_label("Hours").fill("2")
    ban.get_by_role("button", name="Ban", exact=True).click()
    expect(console.locator(".alert")).to_contain_text("Banned")
    expect(console.locator(".badge-danger")).to_have_text("Banned")
    assert console.evaluate(OVERFLOWING) == []
