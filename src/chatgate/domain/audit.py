"""Audit tags: what happened, named the same way everywhere (``area:object:verb``)."""

from __future__ import annotations

import enum


class AuditAction(enum.StrEnum):
    STAFF_SIGNED_UP = "staff:account:created"
    STAFF_SIGNIN_SUCCEEDED = "staff:signin:succeeded"
    STAFF_SIGNIN_FAILED = "staff:signin:failed"
    PROJECT_CREATED = "project:created"
    PROJECT_SETTINGS_CHANGED = "project:settings:changed"
    PROJECT_MEMBER_ADDED = "project:member:added"
    PROJECT_MEMBER_REMOVED = "project.member_removed"
    SIGNING_KEY_GENERATED = "project:signing_key:generated"
    API_KEY_CREATED = "project:api_key:created"
    API_KEY_REVOKED = "project:api_key:revoked"
    API_KEY_REJECTED = "project:api_key:rejected"
    SECRET_READ = "project:signing_key:read"
    WEBHOOK_CREATED = "project:webhook:created"
    WEBHOOK_DELETED = "project:webhook:deleted"
    WEBHOOK_DELIVERY_RESENT = "project:webhook:delivery_resent"
    USER_CREATED = "end_user:created"
    USER_SIGNIN_SUCCEEDED = "end_user:signin:succeeded"
    USER_SIGNIN_FAILED = "end_user:signin:failed"
    TOKEN_REJECTED = "end_user:token:rejected"
    SEAT_LIMIT_REACHED = "end_user:seat_limit:reached"
    VISITOR_MERGED = "end_user:visitor:merged"
    # A vouched login took the email another account had only typed.
    IDENTITY_CLAIMED = "identity.claimed"
    SESSION_ENDED = "session:ended"
    # Staff ended every session of an end user.
    USER_SIGNED_OUT_EVERYWHERE = "user.signed_out_everywhere"
