"""The sensitive-word filter's cost: `python -m bench.wordfilter [--words 10000] [--messages 2000]`.

In-process, on a throwaway SQLite database: builds a list of `--words` words (Chinese of 2–4
characters and English of 4–10 letters, half each, seeded), then times
- the automaton's build (`Matcher`, the words already in memory) and a reload from the database
  (`cache.reload`: the generation, the rows, the build), as after a change in the console;
- `screen_body` per message over `--messages` realistic mixed Chinese/English texts (5–200
  characters), with no list, and with the list (clean texts, the common case; and texts each
  carrying one hit of a mask list, which also pays the masking and the in-memory count);
- the same with a "dense" list whose Chinese words are made of the messages' own characters
  (many texts hit: masking and counting included);
- the worst case: a 5,000-character message of one listed one-character word, 5,000 hits, in a
  mask list (masked and cut) and in a reject list (refused at the first hit).
Each timing is the median of `--rounds` rounds of CPU time (process_time) per call, in µs (one process, no I/O
in the timed calls: the generation is checked at most once per WORDFILTER_CACHE_SECONDS, not here).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import tempfile
import time
from pathlib import Path

CHINESE = (
    "我们明天下午开会项目进度客户讨论方案文档今天晚上会议纪要上海出差同事报告看看一下已经发给杭州预算评审"
)
ENGLISH = ["meeting", "budget", "review", "deploy", "release", "team", "notes", "client", "schedule"]
ENGLISH += ["lunch", "please", "check", "update", "tomorrow", "draft", "weekly", "report", "ok", "thanks"]
PUNCTUATION = ["，", "。", "！", "？", " ", ", ", ". ", "! ", "～"]


def word_list(count: int, rng: random.Random) -> list[str]:
    """Half Chinese (rarer characters than messages use, as real lists are), half English."""
    words: set[str] = set()
    while len(words) < count:
        if len(words) % 2:
            words.add("".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(rng.randint(2, 4))))
        else:
            words.add("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(4, 10))))
    return sorted(words)


def dense_list(count: int, rng: random.Random) -> list[str]:
    """The hard case: Chinese words of 3–4 of the very characters messages are made of (so the
    automaton walks deep on most text), and English words as before."""
    words: set[str] = set()
    while len(words) < count:
        if len(words) % 2:
            words.add("".join(rng.choice(CHINESE) for _ in range(rng.randint(3, 4))))
        else:
            words.add("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(4, 10))))
    return sorted(words)


def message(rng: random.Random) -> str:
    """A chat line of 5–200 characters: runs of common Chinese, English words, punctuation."""
    target = rng.choice([rng.randint(5, 30)] * 3 + [rng.randint(30, 200)])
    parts: list[str] = []
    size = 0
    while size < target:
        if rng.random() < 0.6:
            piece = "".join(rng.choice(CHINESE) for _ in range(rng.randint(2, 8)))
        else:
            piece = " ".join(rng.choice(ENGLISH) for _ in range(rng.randint(1, 4)))
            piece = piece.capitalize() if rng.random() < 0.3 else piece
        piece += rng.choice(PUNCTUATION)
        parts.append(piece)
        size += len(piece)
    return "".join(parts)[:target]


def per_call_us(function, items: list, rounds: int) -> float:
    results = []
    for _ in range(rounds):
        started = time.process_time()
        for item in items:
            function(item)
        results.append((time.process_time() - started) / len(items) * 1e6)
    return round(statistics.median(results), 2)


def _refused(body: dict) -> None:
    from app.errors import ApiError
    from app.wordfilter import screen_body

    with contextlib.suppress(ApiError):
        screen_body(body)


def measure(words: int, messages: int, rounds: int) -> dict:
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db
    from app.models import WordList
    from app.wordfilter import cache, screen_body
    from app.wordfilter.matcher import Matcher
    from config import Config

    rng = random.Random(17)
    vocabulary = word_list(words, rng)
    texts = [message(rng) for _ in range(messages)]
    workdir = Path(tempfile.mkdtemp(prefix="parley-wordfilter-"))
    env = {
        "PARLEY_ENV": "testing",
        "SECRET_KEY": "bench-secret-key-0123456789",
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
        "INSTANCE_PATH": str(workdir),
        "WORDFILTER_CACHE_SECONDS": "3600",
    }
    app = create_app(Config.from_env(env))
    result: dict = {
        "words": words,
        "messages": messages,
        "mean_chars": round(statistics.mean(map(len, texts)), 1),
    }
    with app.app_context():
        upgrade()
        bodies = [{"type": "txt", "msg": text} for text in texts]
        cache.reload()
        result["no_lists_us"] = per_call_us(screen_body, bodies, rounds)
        if not words:
            db.engine.dispose()
            return result

        joined = "\n".join(vocabulary)
        builds = []
        for _ in range(rounds):
            started = time.process_time()
            Matcher([(1, "reject", joined)])
            builds.append((time.process_time() - started) * 1e3)
        result["build_ms"] = round(statistics.median(builds), 1)

        db.session.add(WordList(name="bench", action="reject", words=joined))
        db.session.commit()
        reloads = []
        for _ in range(rounds):
            started = time.process_time()
            cache.reload()
            reloads.append((time.process_time() - started) * 1e3)
        result["reload_ms"] = round(statistics.median(reloads), 1)
        matcher = cache.matcher()
        clean = [body for body in bodies if matcher.scan(body["msg"]) is None]
        result["clean_share"] = round(len(clean) / len(bodies), 3)
        result["with_list_clean_us"] = per_call_us(screen_body, clean, rounds)

        # One hit per message, in a mask list of the same words: masking and counting included.
        db.session.query(WordList).update({"action": "mask"})
        db.session.commit()
        cache.reload()
        hit = [{"type": "txt", "msg": f"{body['msg']} {rng.choice(vocabulary)}"} for body in clean]
        result["with_list_one_hit_us"] = per_call_us(screen_body, hit, rounds)
        # Words of the messages' own characters: many texts hit, every one walks deep.
        db.session.query(WordList).update({"words": "\n".join(dense_list(words, rng))})
        db.session.commit()
        cache.reload()
        matcher = cache.matcher()
        result["dense_hit_share"] = round(
            sum(matcher.scan(b["msg"]) is not None for b in bodies) / len(bodies), 3
        )
        result["dense_list_us"] = per_call_us(screen_body, bodies, rounds)
        # The worst case: 5,000 characters each a hit (the list plus "坏"), masked, or refused.
        db.session.query(WordList).update({"words": f"{joined}\n坏"})
        db.session.commit()
        cache.reload()
        worst = [{"type": "txt", "msg": "坏" * 5000}] * 20
        result["worst_mask_5000_hits_us"] = per_call_us(screen_body, worst, rounds)
        db.session.query(WordList).update({"action": "reject"})
        db.session.commit()
        cache.reload()
        result["worst_reject_5000_hits_us"] = per_call_us(_refused, worst, rounds)
        state = app.extensions[cache.KEY]
        if state.flusher is not None:
            state.flusher.kill()
        db.engine.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.wordfilter")
    parser.add_argument("--words", type=int, default=10_000, help="0: only the cost with no list")
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(measure(args.words, args.messages, args.rounds))


if __name__ == "__main__":
    main()
