"""The robot: its account, everyone's conversation with it, and its answers.

The robot is a real user (`is_bot`), so its messages are stored, synced and roam like anyone's.
A user's message to it (in a direct chat, or a mention in a group it was added to) queues a
`bot.reply` job in the message's own transaction (app/jobs/queue.py); once the message has
committed the job runs in its own greenlet, never in the socket handler, shows `typing`, asks the
provider within `BOT_REPLY_TIMEOUT` and sends the answer, or a polite fallback, through
`send_message` as the robot. If the process dies before it answers, another process takes the
job over when its lease runs out. The answer's client_msg_id is `bot-reply-<message id>`, so a
job run twice still answers once. A voice message gets a fixed polite answer ("please type")
through the same job, without asking the provider; other media are not answered.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import asdict, dataclass

import gevent
import gevent.event
from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import metrics, presenters, realtime, speak_cache
from app.bots import state, unit
from app.bots.base import Provider, ProviderError, fallback_reply
from app.bots.builtin import BuiltinProvider
from app.chat.access import SendContext, active_member_ids
from app.chat.conversations import open_direct
from app.chat.schemas import MAX_TEXT
from app.chat.send import TYPING_INTERVAL, message_stored, send_message
from app.errors import ApiError
from app.extensions import db, socketio
from app.jobs import queue
from app.models import Conversation, ConversationMember, Message, User, utcnow

log = logging.getLogger(__name__)

# Outside the names people can register (they start with a letter or digit), so nobody can
# take the robot's name before it is created.
BOT_USERNAME = "_parley_bot"
FAILURE_KEY = "last_failure"
# The answer to a voice message: the robot reads text only (no provider is asked). In the user's
# language when they chose one, else in both.
VOICE_REPLY = {
    "en": "I can't listen to voice messages yet — please type your question.",
    "zh": "我还听不懂语音，请打字提问。",
}


# --- the account ----------------------------------------------------------------------------


def find_bot() -> User | None:
    return db.session.scalar(select(User).where(User.username_key == BOT_USERNAME))


def get_bot() -> User:
    """The robot's account, created on first need; the unique username settles a race between
    processes. Its nickname follows `BOT_NICKNAME`."""
    nickname = current_app.config["BOT_NICKNAME"]
    bot = find_bot()
    if bot is None:
        db.session.add(User(username=BOT_USERNAME, username_key=BOT_USERNAME, nickname=nickname, is_bot=True))
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
        bot = find_bot()
    elif bot.nickname != nickname:
        bot.nickname = nickname
        speak_cache.drop_user(bot.id)  # its sends carry the nickname from there
        db.session.commit()
    return bot


def open_bot(user_id: int) -> dict:
    """The robot and the user's conversation with it (opened, and announced, on first call)."""
    bot = get_bot()
    summary, _ = open_direct(user_id, bot.id)
    return {"bot": presenters.user_public(bot), "conversation_id": summary["id"], "conversation": summary}


# --- providers and the admins' controls -----------------------------------------------------


def provider() -> Provider:
    """Baidu UNIT when its three credentials are configured, else the built-in rules."""
    config = current_app.config
    return unit.from_config(config, state.store()) or BuiltinProvider(config["BOT_NICKNAME"])


def status() -> dict:
    """What the admin console shows: whether the robot answers, how, and its last failure."""
    failure = state.store().get(FAILURE_KEY)
    return {
        "enabled": state.is_enabled(),
        "provider": provider().name,
        "reply_timeout_seconds": current_app.config["BOT_REPLY_TIMEOUT"],
        "last_failure": json.loads(failure) if failure else None,
    }


def set_enabled(enabled: bool) -> dict:
    """Switch the robot on or off for every process; a switched-off robot shows offline and
    stays silent. Returns the new status."""
    state.set_enabled(enabled)
    return status()


# --- noticing messages for the robot --------------------------------------------------------


@dataclass(frozen=True)
class ReplyJob:
    message_id: int
    conversation_id: int
    sender_id: int
    bot_id: int
    query: str
    voice: bool = False  # a voice message: the polite "type it" answer, no provider


def mention_pattern(bot: User) -> re.Pattern:
    """`@<nickname>` (spaces inside it optional) or `@<username>`, in any letter case."""
    names = [r"\s*".join(re.escape(part) for part in name.split()) for name in (bot.nickname, bot.username)]
    return re.compile("@(?:" + "|".join(names) + ")", re.IGNORECASE)


def _bot_member(conversation_id: int) -> User | None:
    return db.session.scalar(
        select(User)
        .join(ConversationMember, ConversationMember.user_id == User.id)
        .where(
            ConversationMember.conversation_id == conversation_id,
            ConversationMember.active.is_(True),
            User.is_bot.is_(True),
        )
        .limit(1)
    )


@message_stored.connect
def _on_message_stored(context: SendContext, message: Message) -> None:
    """Queue the robot's answer in the message's transaction, to start once it has committed."""
    try:
        job = _job_for(context, message)
    except Exception:
        log.exception("could not decide whether the robot should answer message %s", message.id)
        return
    if job is not None:
        queue.enqueue(REPLY_JOB, asdict(job))


def _job_for(context: SendContext, message: Message) -> ReplyJob | None:
    if context.sender.is_bot:
        return None
    if message.type == "audio":
        return _voice_job_for(context, message)
    if message.type != "txt":
        return None
    text = message.body["msg"]
    if context.peer is not None:
        if not context.peer.is_bot:
            return None
        bot, query = context.peer, text
    elif context.group is not None and ("@" in text or message.mentions):
        bot = _bot_member(context.conversation.id)
        if bot is None:
            return None
        pattern = mention_pattern(bot)
        # Mentioned by id (picked from the member list), or by a typed @name.
        if bot.id not in (message.mentions or ()) and not pattern.search(text):
            return None
        query = pattern.sub(" ", text).strip() or text
    else:
        return None
    if not state.is_enabled():
        return None
    return ReplyJob(message.id, context.conversation.id, context.sender.id, bot.id, query)


def _voice_job_for(context: SendContext, message: Message) -> ReplyJob | None:
    """A voice message to the robot in a direct chat (or calling it by id in a group) gets the
    polite answer through the same job as text; other media stay unanswered."""
    if context.peer is not None:
        bot = context.peer if context.peer.is_bot else None
    elif context.group is not None and message.mentions:
        bot = _bot_member(context.conversation.id)
        if bot is not None and bot.id not in message.mentions:
            bot = None
    else:
        bot = None
    if bot is None or not state.is_enabled():
        return None
    return ReplyJob(message.id, context.conversation.id, context.sender.id, bot.id, "", voice=True)


def voice_reply(user: User | None) -> str:
    """The answer to a voice message, in the user's language (both when they chose none)."""
    locale = (user.locale if user is not None else None) or ""
    if locale.startswith("zh"):
        return VOICE_REPLY["zh"]
    if locale.startswith("en"):
        return VOICE_REPLY["en"]
    return f"{VOICE_REPLY['en']}\n{VOICE_REPLY['zh']}"


# --- answering, in the background ---------------------------------------------------------

REPLY_JOB = "bot.reply"


def _reply_client_msg_id(message_id: int) -> str:
    return f"bot-reply-{message_id}"


@queue.kind(REPLY_JOB, timeout=lambda config: config["BOT_REPLY_TIMEOUT"] + 5)
def _reply(payload: dict) -> None:
    """The `bot.reply` job: answer, unless a run before this one did (it died before the job was
    deleted) — then the provider is not asked again."""
    job = ReplyJob(**payload)
    answered = db.session.scalar(
        select(Message.id).where(
            Message.sender_id == job.bot_id, Message.client_msg_id == _reply_client_msg_id(job.message_id)
        )
    )
    if answered is None:
        answer(job)


def answer(job: ReplyJob) -> dict | None:
    """Think about one message and send the reply as the robot; returns the reply (None if the
    robot may no longer speak there, e.g. the group was muted meanwhile)."""
    started = time.perf_counter()
    user = db.session.get(User, job.sender_id)
    if job.voice:
        text = voice_reply(user)  # nothing to think about: no provider, no typing
    else:
        conversation = db.session.get(Conversation, job.conversation_id)
        audience = [uid for uid in active_member_ids(job.conversation_id) if uid != job.bot_id]
        source = provider()
        db.session.close()  # hold no database connection while the provider thinks
        text = _think(source, user, conversation, job, audience)
    try:
        body = {"type": "txt", "msg": text}
        reply, _ = send_message(job.bot_id, job.conversation_id, _reply_client_msg_id(job.message_id), body)
    except ApiError as error:
        db.session.rollback()
        log.info("the robot may not answer in conversation %s: %s", job.conversation_id, error.code)
        return None
    metrics.robot_replied(time.perf_counter() - started)
    return reply


def _think(source: Provider, user: User, conversation: Conversation, job: ReplyJob, audience) -> str:
    """The provider's answer within BOT_REPLY_TIMEOUT, `typing` shown meanwhile; else the fallback."""
    timeout = current_app.config["BOT_REPLY_TIMEOUT"]
    typing = presenters.typing(job.conversation_id, db.session.get(User, job.bot_id))
    done = gevent.event.Event()

    def keep_typing():
        while not done.wait(TYPING_INTERVAL):
            realtime.emit_to_users("typing", typing, audience)

    realtime.emit_to_users("typing", typing, audience)
    socketio.start_background_task(keep_typing)
    answer_text, failure = None, None
    try:
        with gevent.Timeout(timeout, False):
            answer_text = source.reply(user, conversation, job.query)
        if answer_text is None:
            failure = f"no answer within {timeout} s"
    except ProviderError as error:
        failure = str(error)
    except Exception:
        log.exception("robot provider %s failed", source.name)
        failure = "unexpected error (see the log)"
    finally:
        done.set()
    if failure is None and not answer_text.strip():
        failure = "empty answer"
    if failure is not None:
        log.warning("robot provider %s failed for message %s: %s", source.name, job.message_id, failure)
        record = {"provider": source.name, "reason": failure, "at": presenters.iso(utcnow())}
        state.store().set(FAILURE_KEY, json.dumps(record, ensure_ascii=False))
        return fallback_reply(job.query)
    return answer_text[:MAX_TEXT]
