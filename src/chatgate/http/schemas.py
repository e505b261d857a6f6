"""Request bodies (validated with pydantic) and response shapes (for OpenAPI).

Requests are strict (no "123" for 123) and ignore unknown fields, so vendor
SDKs that send extra properties keep working.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from chatgate.domain.identity import MAX_NAME_LENGTH, normalize_email


class Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


def _email(value: str) -> str:
    email = normalize_email(value)
    if email is None:
        raise ValueError("is not a valid email address")
    return email


Name = Field(min_length=1, max_length=MAX_NAME_LENGTH)
OptionalName = Field(default=None, max_length=MAX_NAME_LENGTH)
Password = Field(max_length=1024, description="8 to 256 characters; common passwords are refused")


def _bare_token(value: str | None) -> str | None:
    """Login answers hand tokens out as ``JWT <token>``: take them back as given, or bare."""
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if token and scheme.lower() in ("jwt", "bearer") else value.strip()


AnonymousToken = Annotated[
    str | None,
    AfterValidator(_bare_token),
    Field(
        default=None,
        description="Session token (bare or as 'JWT <token>') of an anonymous visitor of the same project,"
        " whose chats join this user",
    ),
]


class StaffSignUp(Body):
    email: str
    password: str = Password
    firstname: str = Name
    lastname: str = Name

    _check_email = field_validator("email")(_email)


class SignIn(Body):
    email: str
    password: str = Field(max_length=1024)

    @field_validator("email")
    @classmethod
    def _normalize(cls, value: str) -> str:
        # The sign-up normal form; a malformed email is not refused here, it simply matches no account.
        return normalize_email(value) or value.strip().lower()


class ProjectCreate(Body):
    name: str = Field(min_length=1, max_length=200)


class ProjectChange(Body):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    settings: dict[str, Any] | None = Field(default=None, description="Only the settings to change")


class MemberAdd(Body):
    email: str
    role: Literal["owner", "admin"] = "admin"

    _check_email = field_validator("email")(_email)


class TokenCheckRequest(Body):
    token: str = Field(
        min_length=1, description="The customer token (compact JWS), bare or as 'JWT <token>'; never stored or logged"
    )
    method: Literal["external_code", "custom_token", "customer_login"] = Field(
        description="The sign-in to try it with: external auth code, Tiledesk custom token or Kustomer customer login"
    )

    @field_validator("token")
    @classmethod
    def _bare(cls, value: str) -> str:
        return _bare_token(value) or value


class ApiKeyCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    roles: list[Literal["org.admin", "org.user"]] = Field(min_length=1, max_length=2)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650, description="null: never expires")


class AnonymousSignIn(Body):
    id_project: str = Field(min_length=1, max_length=64)
    firstname: str | None = OptionalName
    lastname: str | None = OptionalName
    email: str | None = Field(
        default=None,
        description="Kept on the visitor, unverified: it identifies nobody and never joins another user",
    )

    @field_validator("email")
    @classmethod
    def _check_email(cls, value: str | None) -> str | None:
        return None if value is None else _email(value)


class CustomTokenSignIn(Body):
    anonymous_token: AnonymousToken = None


class ExternalCodeExchange(Body):
    externalAuthCode: str = Field(min_length=1)
    anonymous_token: AnonymousToken = None


class CustomerLogin(Body):
    jwtToken: str = Field(min_length=1)
    anonymous_token: AnonymousToken = None


class EndUserSignUp(Body):
    email: str
    password: str = Password
    firstname: str | None = OptionalName
    lastname: str | None = OptionalName
    anonymous_token: AnonymousToken = None

    _check_email = field_validator("email")(_email)


class EndUserSignIn(SignIn):
    anonymous_token: AnonymousToken = None


# -- responses (documentation; bodies are built by presenters.py) ---------


class ConversationCreate(Body):
    title: str | None = Field(default=None, max_length=1000, description="Up to 200 characters once trimmed")


class MessageCreate(Body):
    text: str = Field(max_length=40_000, description="1 to 10,000 characters once trimmed")
    client_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Your id for this message: sending it again in the same conversation returns the first one",
    )
    sender_type: Literal["bot", "system"] | None = Field(
        default=None, description="With an API key only: post as the project's bot (default) or as a system note"
    )


class ConversationChange(Body):
    status: Literal["open", "closed"]


class WebhookCreate(Body):
    url: str = Field(description="https:// URL of a public address, at most 2048 characters")
    events: list[str] = Field(
        max_length=16,
        description="Some of user.created, user.signed_in, conversation.created, message.created, conversation.merged",
    )


class ErrorDetail(BaseModel):
    code: str
    message: str
    reason: str | None = Field(default=None, description="Why a customer token was rejected (contract §6)")
    fields: dict[str, str] | None = None


class ErrorOut(BaseModel):
    success: Literal[False]
    msg: str
    error: ErrorDetail


class StaffOut(BaseModel):
    id_: str = Field(alias="_id")
    email: str
    firstname: str
    lastname: str
    emailverified: bool
    createdAt: str
    updatedAt: str


class StaffSignUpOut(BaseModel):
    success: bool
    msg: str
    user: dict[str, Any]


class StaffSignInOut(BaseModel):
    success: bool
    token: str = Field(description='"JWT <token>"')
    user: dict[str, Any]


class StaffMeOut(BaseModel):
    id_: str = Field(alias="_id")
    email: str
    firstname: str
    lastname: str


class MemberOut(BaseModel):
    staff_id: str
    email: str
    firstname: str
    lastname: str
    role: Literal["owner", "admin"]
    added_at: str


class MemberListOut(BaseModel):
    members: list[MemberOut] = Field(description="In the order they were added")


class ProjectOut(BaseModel):
    id_: str = Field(alias="_id")
    id: str
    name: str
    createdAt: str
    settings: dict[str, Any]
    role: str
    hasSigningSecret: bool


class SecretOut(BaseModel):
    jwtSecret: str


class ApiKeyOut(BaseModel):
    id: str
    name: str
    roles: list[str]
    expiresAt: str | None
    createdAt: str
    lastUsedAt: str | None
    revoked: bool
    key: str | None = Field(default=None, description="Only in the answer that creates the key")


class CustomerSettingsOut(BaseModel):
    data: dict[str, Any] = Field(description='{"type": "customer_settings", "attributes": {"secret": "..."}}')


class EndUserOut(BaseModel):
    id_: str = Field(alias="_id")
    externalId: str | None
    email: str | None
    emailverified: bool
    firstname: str | None
    lastname: str | None
    fullName: str
    anonymous: bool
    createdVia: str
    metadata: dict[str, Any]
    createdAt: str
    lastSeenAt: str | None


class EndUserLoginOut(BaseModel):
    success: bool
    token: str = Field(description='"JWT <token>"')
    user: EndUserOut
    created: bool | None = Field(default=None, description="External auth code exchange only")
    merged_conversations: int


class CustomerLoginOut(EndUserLoginOut):
    email: str | None = Field(description="The user's email, also at the top level (Kustomer's response.email)")
    externalId: str | None = Field(description="The user's externalId, also at the top level")


class MeOut(BaseModel):
    loggedIn: bool
    user: EndUserOut | None


class UserListOut(BaseModel):
    users: list[EndUserOut]
    seats: dict[str, int | None]
    next_cursor: str | None


class SessionOut(BaseModel):
    id: str
    method: Literal["end_user"] = Field(description="The kind of session; which sign-in made it is not recorded")
    created_at: str
    expires_at: str


class SessionListOut(BaseModel):
    sessions: list[SessionOut] = Field(description="Neither signed out nor expired, newest first; at most 200")


class SignedOutOut(BaseModel):
    revoked: int = Field(description="How many live sessions were ended")


class TokenCheckOut(BaseModel):
    accepted: bool = Field(description="Whether a real sign-in with this token would succeed now")
    method: str
    reason: str | None = Field(description="Why the token is rejected (a token rejection reason), else null")
    message: str
    claims: dict[str, Any] | None = Field(description="The payload as decoded, before any check; null if unreadable")
    identity: dict[str, str] | None = Field(description="externalId and/or email the verified token names")
    user: EndUserOut | None = Field(description="The existing user it would sign in")
    would: Literal["sign_in", "create", "refuse"] | None = Field(
        description="What the sign-in would do; refuse: the token is good but the sign-in is refused;"
        " null: the token is rejected"
    )


class AuditEventOut(BaseModel):
    id: str
    at: str
    action: str
    actorType: str | None
    actorId: str | None
    subjectId: str | None
    ip: str | None
    reason: str | None
    details: dict[str, Any]


class AuditListOut(BaseModel):
    events: list[AuditEventOut]
    next_cursor: str | None


class ConversationOut(BaseModel):
    id: str
    title: str | None
    userId: str
    status: Literal["open", "closed"]
    createdAt: str
    updatedAt: str


class ConversationListOut(BaseModel):
    conversations: list[ConversationOut]
    next_cursor: str | None


class SenderOut(BaseModel):
    type: Literal["user", "agent", "bot", "system"]
    id: str


class MessageOut(BaseModel):
    id: str
    conversationId: str
    sender: SenderOut
    text: str
    clientId: str | None
    createdAt: str


class MessageListOut(BaseModel):
    messages: list[MessageOut]
    has_more: bool


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    createdAt: str
    secret: str | None = Field(
        default=None, description="whsec_…: the HMAC key of Chatgate-Signature; only in the answer that creates it"
    )


class WebhookListOut(BaseModel):
    webhooks: list[WebhookOut]


class DeliveryOut(BaseModel):
    id: str = Field(description="Also the body's id and the Chatgate-Delivery header: the same on every attempt")
    webhookId: str
    type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    createdAt: str
    lastAttemptAt: str | None
    lastStatusCode: int | None
    lastError: str | None
    nextAttemptAt: str | None = Field(description="When pending: the next attempt")
    deliveredAt: str | None
    data: dict[str, Any]


class DeliveryListOut(BaseModel):
    deliveries: list[DeliveryOut]
    next_cursor: str | None


class HealthOut(BaseModel):
    status: str
