"""The built-in provider: rule-based answers from `builtin_rules.yaml`, in Chinese and English.

It needs no network and no configuration, so the robot answers on a fresh install.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from app.bots.base import language
from app.models import Conversation, User

RULES_PATH = Path(__file__).with_name("builtin_rules.yaml")
LANGUAGES = ("zh", "en")
WEEKDAYS = {
    "zh": ["星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日"],
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
}


@dataclass(frozen=True)
class Rule:
    name: str
    patterns: tuple[re.Pattern, ...]
    reply: dict[str, str]

    def matches(self, text: str) -> bool:
        return any(pattern.search(text) for pattern in self.patterns)


@dataclass(frozen=True)
class Rules:
    rules: tuple[Rule, ...]
    otherwise: dict[str, str]


def _replies(raw, where: str) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(isinstance(raw.get(lang), str) for lang in LANGUAGES):
        raise ValueError(f"{where} needs a zh and an en reply")
    return {lang: raw[lang] for lang in LANGUAGES}


def parse_rules(document) -> Rules:
    """Check a rules document and compile its patterns; a mistake raises ValueError naming it."""
    rules = []
    for number, raw in enumerate(document.get("rules") or [], 1):
        name = raw.get("name") or f"rule {number}"
        patterns = raw.get("patterns")
        if not patterns or not all(isinstance(pattern, str) for pattern in patterns):
            raise ValueError(f"{name} needs a list of patterns")
        try:
            compiled = tuple(re.compile(pattern, re.IGNORECASE) for pattern in patterns)
        except re.error as error:
            raise ValueError(f"{name} has a bad pattern: {error}") from None
        rules.append(Rule(name, compiled, _replies(raw.get("reply"), name)))
    return Rules(tuple(rules), _replies(document.get("otherwise"), "otherwise"))


@functools.cache
def load_rules(path: Path = RULES_PATH) -> Rules:
    with path.open(encoding="utf-8") as file:
        return parse_rules(yaml.safe_load(file))


class BuiltinProvider:
    name = "builtin"

    def __init__(
        self, bot_name: str, clock: Callable[[], datetime] | None = None, rules: Rules | None = None
    ):
        self.bot_name = bot_name
        self.clock = clock or (lambda: datetime.now().astimezone())
        self.rules = rules or load_rules()

    def reply(self, user: User, conversation: Conversation, text: str) -> str:
        lang = language(text)
        rule = next((rule for rule in self.rules.rules if rule.matches(text)), None)
        template = rule.reply[lang] if rule is not None else self.rules.otherwise[lang]
        now = self.clock()
        offset = now.strftime("%z")
        return template.format(
            nickname=user.nickname,
            bot=self.bot_name,
            date=now.strftime("%Y-%m-%d"),
            weekday=WEEKDAYS[lang][now.weekday()],
            time=now.strftime("%H:%M"),
            utc_offset=f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC",
        )
