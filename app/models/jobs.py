"""Work that must run once across every process of a deployment: queued jobs (one row each,
written in the transaction that asks for them) and periodic jobs (one schedule row each).

Both are claimed with a lease (`lease_until`): a process takes a due row in one conditional
statement, does the work and then deletes the job (or moves the schedule on). A process that
dies mid-way leaves the lease to run out, and another process takes the row over."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.chat import BigId
from app.models.types import UTCDateTime, utcnow


class Job(db.Model):
    """One queued job of `kind` with its `payload`; deleted once done (or given up)."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Not before then (retries back off).
    run_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A process claimed it until then (another may take it over after).
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (Index("ix_jobs_run_after", "run_after"),)


class JobSchedule(db.Model):
    """A periodic job: due at `next_run_at`, held by one process until `lease_until`."""

    __tablename__ = "job_schedules"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
