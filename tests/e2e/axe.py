"""axe-core in the browser tests: inject the vendored axe.min.js into a page, check the page
against WCAG 2.x A and AA, and report the serious and critical violations readably.

axe is evaluated through the DevTools protocol (`page.evaluate`), which Parley's strict
Content-Security-Policy (app/headers.py) does not govern: the pages under test keep the policy
they ship with, and no script tag is added to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from playwright.sync_api import Page

from config import BASE_DIR

AXE = BASE_DIR / "tests/e2e/vendor/axe.min.js"
# WCAG 2.0, 2.1 and 2.2 at levels A and AA.
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]
IMPACTS = ("serious", "critical")

_source: str | None = None


def _axe_source() -> str:
    global _source
    if _source is None:
        if not AXE.exists():
            raise RuntimeError(f"{AXE} is missing: run `make test` (it copies it from node_modules/axe-core)")
        _source = AXE.read_text(encoding="utf-8")
    return _source


RUN = """
async ([include, exclude, tags, disabled]) => {
  const context = {
    include: include.length ? include.map((s) => [s]) : [["html"]],
    exclude: exclude.map((s) => [s]),
  };
  const rules = Object.fromEntries(disabled.map((id) => [id, { enabled: false }]));
  const options = { runOnly: { type: "tag", values: tags }, rules, resultTypes: ["violations"] };
  const result = await window.axe.run(context, options);
  return result.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.map((n) => ({
      target: n.target.map(String).join(" "),
      impact: n.impact,
      summary: n.failureSummary || "",
    })),
  }));
}
"""


@dataclass
class Violation:
    screen: str
    rule: str
    impact: str
    help: str
    nodes: list[dict] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"[{self.screen}] {self.rule} ({self.impact}): {self.help}"]
        for node in self.nodes[:6]:
            summary = " ".join(node["summary"].split())[:300]
            lines.append(f"    {node['target']}  — {summary}")
        if len(self.nodes) > 6:
            lines.append(f"    … and {len(self.nodes) - 6} more")
        return "\n".join(lines)


def violations(
    page: Page,
    screen: str,
    *,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    disable: list[str] | None = None,
) -> list[Violation]:
    """The serious and critical WCAG A/AA violations on `page` now. `include`/`exclude` are CSS
    selectors narrowing the checked part; `disable` names rules not to run (say why at the call)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(_axe_source())
    found = page.evaluate(RUN, [include or [], exclude or [], TAGS, disable or []])
    result = []
    for item in found:
        nodes = [node for node in item["nodes"] if node["impact"] in IMPACTS]
        if nodes:
            result.append(Violation(screen, item["id"], item["impact"], item["help"], nodes))
    return result


class Audit:
    """Collects the violations of several screens, so that one run reports them all."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.found: list[Violation] = []
        self.screens: list[str] = []

    def check(self, page: Page, screen: str, **options) -> list[Violation]:
        self.screens.append(screen)
        found = violations(page, screen, **options)
        self.found.extend(found)
        return found

    def message(self) -> str:
        return f"axe found serious or critical violations ({self.name}):\n" + "\n".join(map(str, self.found))

    def assert_clean(self) -> None:
        assert not self.found, self.message()


def assert_accessible(page: Page, screen: str, **options) -> None:
    """Fail with a readable list when axe finds a serious or critical violation on `page`."""
    audit = Audit(screen)
    audit.check(page, screen, **options)
    audit.assert_clean()
