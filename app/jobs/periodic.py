"""The periodic jobs (app/jobs/schedule.py runs each once per interval across every process)."""

from __future__ import annotations

from datetime import datetime

from app import retention
from app.export import services as exports
from app.groups import roles
from app.jobs.schedule import every
from app.media import services as media
from app.moderation import services as moderation


@every(
    "uploads.cleanup",
    interval=lambda config: config["UPLOAD_CLEANUP_INTERVAL_MINUTES"] * 60,
    timeout=lambda config: 1800,
)
def cleanup_uploads(since: datetime, now: datetime) -> None:
    """Uploads no message carries and no avatar uses, a day old (as `flask cleanup-uploads`).
    It commits as it goes: a run taken over part-way leaves nothing half done."""
    media.cleanup_uploads()


@every("mutes.ended", interval=lambda config: config["MUTE_CHECK_SECONDS"], timeout=lambda config: 60)
def tell_ended_mutes(since: datetime, now: datetime) -> None:
    """Group-member and site mutes that ended in `(since, now]`: the people concerned are told
    once (their writes commit with the schedule's move; the events leave after that commit)."""
    roles.end_member_mutes(since, now)
    moderation.announce_ended_mutes(since, now)


@every(
    "retention.purge",
    interval=lambda config: config["RETENTION_INTERVAL_MINUTES"] * 60,
    timeout=lambda config: 1800,
)
def purge_expired_messages(since: datetime, now: datetime) -> None:
    """The retention policy (app/retention.py): messages older than their conversation's
    retention go, with their media. Each batch commits by itself: a run stopped part-way leaves
    every conversation consistent, and the next run goes on from there."""
    retention.purge(now)


@every(
    "exports.cleanup",
    interval=lambda config: config["EXPORT_CLEANUP_INTERVAL_MINUTES"] * 60,
    timeout=lambda config: 600,
)
def remove_expired_exports(since: datetime, now: datetime) -> None:
    """Users' data exports whose link expired lose their zip and row (app/export/services.py)."""
    exports.remove_expired(now)
