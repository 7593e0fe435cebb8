"""All models, imported here so Alembic and the app see one complete metadata."""

from app.models.actions import (
    MessageEdit,
    MessageHide,
    MessageMention,
    MessagePlay,
    MessageReaction,
    UploadShare,
)
from app.models.chat import Conversation, ConversationMember, Message, StreamCounter
from app.models.integrations import ApiKey, SignInToken, UsedJwt, Webhook, WebhookDelivery, WordList
from app.models.jobs import Job, JobSchedule
from app.models.media import Upload
from app.models.moderation import AuditLog, Sanction
from app.models.operations import AdminRole, Setting, UserExport
from app.models.push import PushSubscription
from app.models.social import (
    Block,
    FriendRequest,
    Friendship,
    Group,
    GroupJoinRequest,
    GroupMember,
    GroupRemoval,
    counterparts,
)
from app.models.types import utcnow
from app.models.users import DeviceSession, OAuthIdentity, User

__all__ = [
    "AdminRole",
    "ApiKey",
    "AuditLog",
    "Block",
    "Conversation",
    "ConversationMember",
    "DeviceSession",
    "FriendRequest",
    "Friendship",
    "Group",
    "GroupJoinRequest",
    "GroupMember",
    "GroupRemoval",
    "Job",
    "JobSchedule",
    "Message",
    "MessageEdit",
    "MessageHide",
    "MessageMention",
    "MessagePlay",
    "MessageReaction",
    "OAuthIdentity",
    "PushSubscription",
    "Sanction",
    "Setting",
    "SignInToken",
    "StreamCounter",
    "Upload",
    "UploadShare",
    "UsedJwt",
    "UserExport",
    "User",
    "Webhook",
    "WebhookDelivery",
    "WordList",
    "counterparts",
    "utcnow",
]
