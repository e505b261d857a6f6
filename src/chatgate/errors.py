"""Every refusal Chatgate can give, each with a stable code and an HTTP status.

Services raise these; one handler in ``http/errors.py`` turns them into the
contract's error body. Nothing here imports HTTP or database code.
"""

from __future__ import annotations

from collections.abc import Mapping


class DomainError(Exception):
    """A refusal the caller can act on. ``code`` is stable API."""

    status: int = 400
    code: str = "bad_request"
    default_message: str = "The request could not be processed."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    def extra(self) -> dict[str, object]:
        """Fields added to the error object beside code and message."""
        return {}


class BadRequest(DomainError):
    status, code = 400, "bad_request"


class MalformedJson(DomainError):
    status, code = 400, "malformed_json"
    default_message = "The request body is not a JSON object."


class NotAuthenticated(DomainError):
    status, code = 401, "not_authenticated"
    default_message = "Sign in first: send a valid session token."


class InvalidCredentials(DomainError):
    status, code = 401, "invalid_credentials"
    default_message = "The email or password is incorrect."


class InvalidApiKey(DomainError):
    status, code = 401, "invalid_api_key"
    default_message = "The API key is unknown, revoked or expired."


class TokenRejected(DomainError):
    """A customer token was refused; ``reason`` is one of contract §6."""

    status, code = 401, "invalid_token"

    REASONS = frozenset(
        {
            "malformed",
            "too_large",
            "alg_not_allowed",
            "bad_signature",
            "expired",
            "not_yet_valid",
            "iat_too_old",
            "missing_claim",
            "invalid_claim",
            "wrong_audience",
            "wrong_subject",
            "unknown_key",
            "replayed",
        }
    )

    def __init__(self, reason: str, message: str | None = None) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown rejection reason {reason!r}")
        self.reason = reason
        super().__init__(message or f"The token was rejected ({reason.replace('_', ' ')}).")

    def extra(self) -> dict[str, object]:
        return {"reason": self.reason}


class Forbidden(DomainError):
    status, code = 403, "forbidden"
    default_message = "You are not allowed to do this."


class InsufficientRole(Forbidden):
    code = "insufficient_role"
    default_message = "Your role in this project does not allow this."


class SeatLimitReached(Forbidden):
    code = "seat_limit_reached"
    default_message = "This project has no free seat for a new user."


class ConversationLimitReached(Forbidden):
    code = "conversation_limit_reached"
    default_message = "This user has as many conversations as the server allows."


class AuthMethodDisabled(Forbidden):
    code = "auth_method_disabled"
    default_message = "This way of signing in is turned off for the project."


class NotFound(DomainError):
    status, code = 404, "not_found"
    default_message = "Nothing is here."


class ProjectNotFound(NotFound):
    code = "project_not_found"
    default_message = "No such project."


class UserNotFound(NotFound):
    code = "user_not_found"
    default_message = "No such user in this project."


class MemberNotFound(NotFound):
    code = "member_not_found"
    default_message = "This staff account is not a member of the project."


class ConversationNotFound(NotFound):
    code = "conversation_not_found"
    default_message = "No such conversation."


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"
    default_message = "No such API key in this project."


class WebhookNotFound(NotFound):
    code = "webhook_not_found"
    default_message = "No such webhook in this project."


class DeliveryNotFound(NotFound):
    code = "delivery_not_found"
    default_message = "No such delivery of this webhook."


class MethodNotAllowed(DomainError):
    status, code = 405, "method_not_allowed"
    default_message = "This method is not allowed here."


class Conflict(DomainError):
    status, code = 409, "conflict"


class EmailTaken(Conflict):
    code = "email_taken"
    default_message = "An account with this email already exists."


class LastOwner(Conflict):
    code = "last_owner"
    default_message = "A project needs at least one owner; make someone else owner first."


class IdentityConflict(Conflict):
    code = "identity_conflict"
    default_message = "This email already belongs to another user of the project."


class WebhookLimitReached(Conflict):
    code = "webhook_limit_reached"
    default_message = "This project has as many webhooks as the server allows; delete one first."


class PayloadTooLarge(DomainError):
    status, code = 413, "body_too_large"
    default_message = "The request body is too large."


class ValidationFailed(DomainError):
    status, code = 422, "validation_failed"

    def __init__(self, fields: Mapping[str, str], message: str | None = None) -> None:
        self.fields = dict(fields)
        first = next(iter(self.fields.items()), ("request", "is invalid"))
        super().__init__(message or f"{first[0]}: {first[1]}")

    def extra(self) -> dict[str, object]:
        return {"fields": self.fields}


class RateLimited(DomainError):
    status, code = 429, "rate_limited"
    default_message = "Too many attempts. Try again later."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        self.retry_after = max(1, retry_after)
        super().__init__(message)

    def extra(self) -> dict[str, object]:
        return {"retryAfter": self.retry_after}


class StorageUnavailable(Exception):
    """The database cannot be reached right now: neither a refusal of the request nor a bug.

    Answered 503 ``database_unavailable`` and logged in one line, without a
    traceback; ``reason`` says what the driver said, for the log only.
    """

    status, code = 503, "database_unavailable"
    message = "The database cannot be reached right now; try again shortly."

    def __init__(self, cause: BaseException) -> None:
        lines = str(cause).strip().splitlines()
        self.reason = f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__
        super().__init__(self.reason)
