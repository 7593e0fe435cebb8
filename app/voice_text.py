"""A voice message's length as every preview shows it, WeChat's way: whole seconds, at least 1,
"0:07" in English and "7″" in Chinese. One definition for the push previews (app/push/sender.py)
and the admin console (app/admin/views.py); the browser client has its own (i18n.js). Imports
nothing of Parley, so anything may import it."""

from __future__ import annotations

import math

# By language, as users.locale and `html_lang()` name it.
LENGTH_FORMS = {"en": "{minutes}:{seconds:02d}", "zh-CN": "{total}″"}


def whole_seconds(duration) -> int:
    """`duration` (the server's measure, seconds) rounded half up as the clients round, at least
    1 (also for a missing or broken figure)."""
    try:
        return max(1, math.floor(float(duration or 0) + 0.5))
    except (TypeError, ValueError, OverflowError):  # not a number, NaN, infinite
        return 1


def voice_length(duration, language: str | None = "en") -> str:
    """`duration` in whole seconds, in `language`'s form (English for any other)."""
    total = whole_seconds(duration)
    form = LENGTH_FORMS.get(language or "en", LENGTH_FORMS["en"])
    return form.format(total=total, minutes=total // 60, seconds=total % 60)
