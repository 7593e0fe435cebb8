"""Delete for me: a member hides messages from their own view, on all their devices; the others
still see them. A batch of hides is one change (one stream position), so /sync's `hidden` list
hands it to devices that were away."""

from __future__ import annotations

from sqlalchemy import func, select, update

from app import realtime
from app.chat.access import locked_member, visible_window
from app.chat.conversations import conversation_summaries
from app.chat.stream import next_stream_pos
from app.errors import ApiError
from app.extensions import db
from app.locales import _l
from app.models import Conversation, Message, MessageHide

MAX_HIDE = 100


def hide(user_id: int, conversation_id: int, seqs: list[int]) -> dict:
    """Hide messages `seqs` (1..100 of them) for the user. All of them must be messages the user
    can see (else 404 `not_visible`, nothing hidden); those hidden already are skipped, and a
    batch with nothing new changes nothing and tells nobody. Former members may hide too."""
    seqs = sorted(set(seqs))
    # The member row locked, so two devices hiding at once queue up rather than insert the same
    # row twice.
    member = locked_member(user_id, conversation_id)
    lowest, highest = visible_window(member, db.session.get(Conversation, conversation_id))
    found = dict(
        db.session.execute(
            select(Message.seq, Message.id).where(
                Message.conversation_id == conversation_id,
                Message.seq.in_(seqs),
                Message.seq > lowest,
                Message.seq <= highest,
            )
        ).all()
    )
    missing = [seq for seq in seqs if seq not in found]
    if missing:
        shown = ", ".join(str(seq) for seq in missing[:10])
        raise ApiError(
            "not_visible",
            "You cannot see these messages.",
            404,
            {"seqs": _l("not visible: %(seqs)s", seqs=shown)},
        )
    done = set(
        db.session.scalars(
            select(MessageHide.message_id).where(
                MessageHide.user_id == user_id, MessageHide.message_id.in_(list(found.values()))
            )
        )
    )
    new = [seq for seq in seqs if found[seq] not in done]
    if new:
        # The rows go in before the stream position is taken: their foreign keys lock the rows
        # they name (conversation, messages), and every lock comes before the stream counter's.
        db.session.add_all(
            MessageHide(
                user_id=user_id,
                message_id=found[seq],
                conversation_id=conversation_id,
                seq=seq,
                stream_pos=0,
            )
            for seq in new
        )
        db.session.flush()
        pos = next_stream_pos()
        db.session.execute(
            update(MessageHide)
            .where(MessageHide.user_id == user_id, MessageHide.message_id.in_([found[seq] for seq in new]))
            .values(stream_pos=pos)
            .execution_options(synchronize_session=False)
        )
        # The member's own state changed: sync also hands over the conversation's summary,
        # whose preview may now be an older message.
        member.stream_pos = pos
        db.session.flush()
        realtime.emit_after_commit(
            "message:hidden", {"conversation_id": conversation_id, "seqs": new}, [user_id]
        )
        if new[-1] > _newest_shown(user_id, conversation_id, lowest, highest):
            # The preview was one of them: the user's devices get the summary with the new one.
            for summary in conversation_summaries([user_id], conversation_ids=[conversation_id]):
                realtime.emit_after_commit("conversation:update", summary, [user_id])
    db.session.commit()
    return {"conversation_id": conversation_id, "seqs": seqs}


def _newest_shown(user_id: int, conversation_id: int, lowest: int, highest: int) -> int:
    """The newest seq in the window not hidden for the user (0 if none)."""
    hidden = (
        select(MessageHide.message_id)
        .where(MessageHide.user_id == user_id, MessageHide.message_id == Message.id)
        .exists()
    )
    newest = db.session.scalar(
        select(func.max(Message.seq)).where(
            Message.conversation_id == conversation_id, Message.seq > lowest, Message.seq <= highest, ~hidden
        )
    )
    return newest or 0
