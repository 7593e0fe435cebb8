"""System notices to many users in one call: `python -m bench.notices [--users 500] [--rounds 5]`.

In-process, on a throwaway SQLite database, or on `--database-url` (a fresh, empty PostgreSQL
database: its tables are created by the migrations and left behind). Makes `--users` accounts,
then times `send_user_notices` to all of them: the first call (which also makes every user's
notice conversation and membership) and `--rounds` calls after it (conversations exist), as wall
time per call in ms and the number of SQL statements each took (the same for 5 users or 500).
Deliveries are queued for after the commit, as in the server; no socket is connected, so their
emit is the in-process no-op.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def measure(users: int, rounds: int, database_url: str | None) -> dict:
    from flask_migrate import upgrade
    from sqlalchemy import event

    from app import create_app
    from app.auth.services import create_user
    from app.extensions import db
    from app.notices import send_user_notices
    from config import Config

    workdir = Path(tempfile.mkdtemp(prefix="parley-notices-"))
    env = {
        "PARLEY_ENV": "testing",
        "SECRET_KEY": "bench-secret-key-0123456789",
        "DATABASE_URL": database_url or f"sqlite:///{workdir / 'bench.db'}",
        "INSTANCE_PATH": str(workdir),
    }
    app = create_app(Config.from_env(env))
    result: dict = {"users": users, "dialect": None}
    with app.app_context():
        upgrade()
        result["dialect"] = db.engine.dialect.name
        ids = [create_user(f"notice{number}", None).id for number in range(users)]
        db.session.commit()
        statements: list[str] = []
        event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))

        def timed() -> tuple[float, int]:
            statements.clear()
            started = time.perf_counter()
            send_user_notices(ids, "Maintenance tonight 22:00–23:00.")
            return (time.perf_counter() - started) * 1000, len(statements)

        first_ms, first_statements = timed()
        later = [timed() for _ in range(rounds)]
        result |= {
            "first_call_ms": round(first_ms, 1),
            "first_call_statements": first_statements,
            "later_call_ms_median": round(statistics.median(ms for ms, _ in later), 1),
            "later_call_statements": later[0][1],
            "per_user_us": round(statistics.median(ms for ms, _ in later) * 1000 / users, 1),
        }
        db.session.remove()
        db.engine.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.notices")
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", default=None, help="a fresh PostgreSQL database (default: SQLite)")
    args = parser.parse_args()
    print(measure(args.users, args.rounds, args.database_url))


if __name__ == "__main__":
    main()
