"""One Aho–Corasick automaton (pyahocorasick) over the words of every enabled list, and what a
text's hits mean: refused (a `reject` list's word) or masked (each hit of a `mask` list → ***).

Pure: no Flask, no database. The automaton is built once per change of the lists
(app/wordfilter/cache.py); scanning a message is one pass over a lower-cased copy of the text,
so its cost grows with the text, not with the number of words.

The automaton runs over UTF-8 bytes (each byte carried as one character, the latin-1 trick),
not over characters: pyahocorasick looks a node's next step up in a list, and a list of 10,000
Chinese words starts with thousands of different characters, so the root alone made a clean
43-character message cost ~150 µs; over bytes a node has at most 256 next steps (in practice
~64) and the same message costs ~12 µs (docs/PERFORMANCE.md). UTF-8 is self-synchronising, so a
word's bytes only ever match at character boundaries; a hit's byte offsets are turned back into
character offsets only when there is a hit, by a running count: hits come in the order of their
ends, so each byte is decoded once per scan (decoding from the start for every hit made a
5,000-character message of 5,000 one-character hits cost 47–73 ms). A scan stops at the first hit
of a reject list: the text is refused whatever else it holds.

Matching rules, chosen so that a list of English words does not refuse "class" for "ass":
- Letter case and width are ignored: text and words are folded to copies of the same length
  — full-width ASCII (U+FF01–U+FF5E, "ｂａｄ") to ASCII, then lower case (a character whose lower
  case is longer, such as "İ", is kept as it is) — so a hit's position in the copy is its
  position in the text.
- Zero-width characters (U+200B–U+200D, U+2060, U+FEFF, the soft hyphen U+00AD) are left out of
  the copy that is matched ("b\u200bad" hits "bad"); the copy keeps each character's position in
  the text, and a masked stretch covers the invisible characters inside it. Other disguises
  (look-alike letters from other scripts, spaces between letters) are not handled.
- A word that begins (ends) with a Latin letter or digit hits only at a word boundary on that
  side: the text's neighbouring character must not be a Latin letter or digit. Chinese words,
  and words written with a leading or trailing `*` (`*spam*`, `spam*`), hit anywhere.
- Hits may overlap, nest or touch; masking covers their union, one *** per stretch of joined
  hits ("bad坏bad" with all three listed is one ***).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import ahocorasick

MASK = "***"
WILDCARD = "*"
# Longer lines are not words: a list refuses them when it is saved (app/wordfilter/services.py).
MAX_WORD_CHARS = 100


def as_bytes(text: str) -> str:
    """`text`'s UTF-8 bytes, one character per byte (what the automaton reads)."""
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


# Full-width ASCII to ASCII, one character for one. By re.sub, not str.translate: Chinese text
# is full of full-width punctuation ("，！？"), and translate looks up every character (~3 µs a
# message against ~1 µs).
_FULL_WIDTH = re.compile("[\uff01-\uff5e]")


def _narrow(match: re.Match) -> str:
    return chr(ord(match.group()) - 0xFEE0)


# Invisible characters that could split a word without showing.
ZERO_WIDTH = "\u00ad\u200b\u200c\u200d\u2060\ufeff"
_INVISIBLE = re.compile(f"[{ZERO_WIDTH}]")


def fold(text: str) -> str:
    """`text` lower-cased and full-width ASCII made ASCII, with the same length (so positions
    carry over)."""
    text = _FULL_WIDTH.sub(_narrow, text)
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(low if len(low := char.lower()) == 1 else char for char in text)


def is_word_char(char: str) -> bool:
    """A Latin letter or digit (ASCII, Latin-1 and Latin Extended): what English words are made of."""
    return char <= "\u024f" and char.isalnum()


def split_word(line: str) -> tuple[str, bool, bool] | None:
    """A list's line as (folded word, needs a boundary before, needs one after); None if empty."""
    word = line.strip()
    left = not word.startswith(WILDCARD)
    right = not word.endswith(WILDCARD)
    word = _INVISIBLE.sub("", fold(word.strip(WILDCARD).strip()))
    if not word:
        return None
    return word, left and is_word_char(word[0]), right and is_word_char(word[-1])


@dataclass(frozen=True)
class Verdict:
    """A text's hits: `rejected` (a reject list's word), else `masked` (the text to keep).
    `hits`: how many hits each list that acted had (a refused text: one, the first reject hit)."""

    rejected: bool
    masked: str | None
    hits: Counter


class Matcher:
    """The automaton of a set of lists, each given as (id, action, words one per line)."""

    def __init__(self, lists: Iterable[tuple[int, str, str]]):
        entries: dict[str, list[tuple[bool, bool, bool, int]]] = {}
        for list_id, action, words in lists:
            for line in (words or "").splitlines():
                parsed = split_word(line)
                if parsed is None:
                    continue
                word, left, right = parsed
                entry = (left, right, action == "reject", list_id)
                variants = entries.setdefault(word, [])
                if entry not in variants:
                    variants.append(entry)
        self.words = len(entries)
        self._automaton = None
        if entries:
            automaton = ahocorasick.Automaton()
            for word, variants in entries.items():
                automaton.add_word(as_bytes(word), (len(word), tuple(variants)))
            automaton.make_automaton()
            self._automaton = automaton

    def __bool__(self) -> bool:
        return self._automaton is not None

    def scan(self, text: str) -> Verdict | None:
        """None when the text has no hit (the common case, and the fast one)."""
        if self._automaton is None or not text:
            return None
        folded = fold(text)
        # Where each character of the matched copy is in the text (None: the same place).
        where: list[int] | None = None
        if _INVISIBLE.search(folded):
            where = [index for index, char in enumerate(folded) if char not in ZERO_WIDTH]
            folded = "".join(folded[index] for index in where)
            if not folded:
                return None
        encoded = as_bytes(folded)
        size = len(folded)
        ascii_only = len(encoded) == size  # bytes are characters
        # The bytes counted so far and the characters they make (hits come in order of their end).
        bytes_done = chars_done = 0
        masks: Counter | None = None
        spans: list[tuple[int, int]] = []
        for byte_end, (length, variants) in self._automaton.iter(encoded):
            if ascii_only:
                end = byte_end
            else:
                if byte_end >= bytes_done:
                    chars_done += char_count(encoded[bytes_done : byte_end + 1])
                    bytes_done = byte_end + 1
                end = chars_done - 1
            start = end - length + 1
            for left, right, reject, list_id in variants:
                if left and start > 0 and is_word_char(folded[start - 1]):
                    continue
                if right and end + 1 < size and is_word_char(folded[end + 1]):
                    continue
                if reject:
                    return Verdict(True, None, Counter({list_id: 1}))
                masks = masks or Counter()
                masks[list_id] += 1
                if not spans or spans[-1] != (start, end + 1):
                    spans.append((start, end + 1))
        if masks:
            return Verdict(False, _mask(text, spans, where), masks)
        return None


def char_count(piece: str) -> int:
    """How many characters the UTF-8 bytes `piece` (one character per byte, whole characters)
    make."""
    return len(piece.encode("latin-1").decode("utf-8", "surrogatepass"))


def _mask(text: str, spans: list[tuple[int, int]], where: list[int] | None = None) -> str:
    """`text` with each stretch covered by overlapping, nested or touching spans replaced by one
    ***. Spans are in the matched copy; `where` maps them back to the text when the copy left
    characters out (a stretch then also covers the invisible characters inside it)."""
    stretches: list[list[int]] = []
    for start, end in sorted(spans):
        if stretches and start <= stretches[-1][1]:
            stretches[-1][1] = max(stretches[-1][1], end)
        else:
            stretches.append([start, end])
    pieces = []
    done = 0
    for start, end in stretches:
        if where is not None:
            start, end = where[start], where[end - 1] + 1
        pieces.append(text[done:start])
        pieces.append(MASK)
        done = end
    pieces.append(text[done:])
    return "".join(pieces)
