"""Word lists: made, changed, filled from a file and deleted by administrators with the
`manage_words` right — each write audited, and the process's automaton rebuilt once it
committed (other processes notice within WORDFILTER_CACHE_SECONDS). The admin console calls
these and nothing else."""

from __future__ import annotations

from sqlalchemy import func, select

from app.errors import ApiError, not_found
from app.extensions import db
from app.locales import _l
from app.models import AuditLog, WordList, utcnow
from app.models.integrations import WORD_LIST_ACTIONS
from app.moderation import rights
from app.validation import UNSTORABLE
from app.wordfilter import cache
from app.wordfilter.matcher import MAX_WORD_CHARS, split_word

# An imported file, and a list's words as saved, are at most this large (UTF-8).
MAX_LIST_BYTES = 2 * 1024 * 1024
MAX_NAME = 100


def parse_words(text: str) -> list[str]:
    """One word a line, trimmed; blank lines and repeats (in any letter case) dropped. A line
    longer than a word may be, or unstorable text, is refused naming its line."""
    words: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        word = line.strip()
        if not word:
            continue
        if len(word) > MAX_WORD_CHARS or UNSTORABLE.search(word):
            problem = _l(
                "line %(line)s is not a word (at most %(max)s characters, no NUL)",
                line=number,
                max=MAX_WORD_CHARS,
            )
            raise ApiError("invalid_input", "A line of the list is not a word.", 400, {"words": problem})
        parsed = split_word(word)
        if parsed is None:
            continue
        if parsed in seen:
            continue
        seen.add(parsed)
        words.append(word)
    return words


def decode_file(data: bytes) -> str:
    """An uploaded word file's text: UTF-8 (a BOM allowed), at most MAX_LIST_BYTES."""
    if len(data) > MAX_LIST_BYTES:
        limit = _l("at most %(mb)s MB", mb=MAX_LIST_BYTES // (1024 * 1024))
        raise ApiError(
            "payload_too_large", _l("The file is too large (%(limit)s).", limit=limit), 413, {"file": limit}
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(
            "invalid_input",
            "The file is not UTF-8 text.",
            400,
            {"file": "must be UTF-8 text, one word a line"},
        ) from None


def _require_manager(admin_id: int) -> None:
    """The acting account holds `manage_words` (app/moderation/rights.py); else 403, nothing done."""
    rights.require(admin_id, "manage_words")


def _get(list_id: int) -> WordList:
    row = db.session.get(WordList, list_id)
    if row is None:
        raise not_found("word list")
    return row


def _check(name: str, action: str, words: list[str]) -> str:
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME or UNSTORABLE.search(name):
        raise ApiError(
            "invalid_input", "Name the list.", 400, {"name": _l("1 to %(max)s characters", max=MAX_NAME)}
        )
    if action not in WORD_LIST_ACTIONS:
        raise ApiError(
            "invalid_input",
            "Unknown action.",
            400,
            {"action": _l("one of %(values)s", values=", ".join(WORD_LIST_ACTIONS))},
        )
    if len("\n".join(words).encode()) > MAX_LIST_BYTES:
        limit = _l("at most %(mb)s MB", mb=MAX_LIST_BYTES // (1024 * 1024))
        raise ApiError(
            "payload_too_large", _l("The list is too large (%(limit)s).", limit=limit), 413, {"words": limit}
        )
    return name


def _audit(admin_id: int, action: str, row: WordList, reason: str = "", **details) -> None:
    details = {"name": row.name, "action": row.action, "enabled": row.enabled, **details}
    db.session.add(
        AuditLog(
            admin_id=admin_id,
            action=action,
            target_type="word_list",
            target_id=row.id,
            reason=reason[:500],
            details=details,
        )
    )


def _commit() -> None:
    db.session.commit()
    cache.reload()


def create_list(admin_id: int, name: str, action: str, enabled: bool, words_text: str) -> WordList:
    _require_manager(admin_id)
    words = parse_words(words_text or "")
    name = _check(name, action, words)
    row = WordList(name=name, action=action, enabled=enabled, words="\n".join(words), updated_at=utcnow())
    db.session.add(row)
    db.session.flush()
    _audit(admin_id, "wordlist_create", row, words=len(words))
    _commit()
    return row


def update_list(
    admin_id: int, list_id: int, name: str, action: str, enabled: bool, words_text: str
) -> WordList:
    _require_manager(admin_id)
    row = _get(list_id)
    words = parse_words(words_text or "")
    row.name = _check(name, action, words)
    row.action, row.enabled, row.words = action, enabled, "\n".join(words)
    row.updated_at = utcnow()
    _audit(admin_id, "wordlist_update", row, words=len(words))
    _commit()
    return row


def import_words(admin_id: int, list_id: int, data: bytes, *, replace: bool = False) -> int:
    """Add a UTF-8 file's words (one a line) to a list, or replace its words; returns how many
    words the file added."""
    _require_manager(admin_id)
    row = _get(list_id)
    incoming = parse_words(decode_file(data))
    before = [] if replace else parse_words(row.words or "")
    words = parse_words("\n".join([*before, *incoming]))
    _check(row.name, row.action, words)
    row.words = "\n".join(words)
    row.updated_at = utcnow()
    added = len(words) - len(before)
    _audit(admin_id, "wordlist_import", row, words=len(words), added=added, replace=replace)
    _commit()
    return added


def delete_list(admin_id: int, list_id: int, reason: str = "") -> None:
    _require_manager(admin_id)
    row = _get(list_id)
    _audit(admin_id, "wordlist_delete", row, reason, hits=row.hits)
    db.session.delete(row)
    _commit()


def lists() -> list[WordList]:
    """Every list for the console, with this process's hits written first."""
    cache.flush()
    return list(db.session.scalars(select(WordList).order_by(WordList.name, WordList.id)))


def hit_counts(limit: int = 5) -> tuple[int, list[tuple[str, int]]]:
    """The dashboard's figures: hits of every list together, and the lists hit most."""
    cache.flush()
    total = db.session.scalar(select(func.coalesce(func.sum(WordList.hits), 0)))
    top = db.session.execute(
        select(WordList.name, WordList.hits)
        .where(WordList.hits > 0)
        .order_by(WordList.hits.desc())
        .limit(limit)
    ).all()
    return int(total or 0), [(name, int(hits)) for name, hits in top]
