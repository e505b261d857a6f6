"""Staff accounts (agents and admins): sign-up and sign-in, Tiledesk style, and HTTP Basic where allowed."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from chatgate.domain.audit import AuditAction
from chatgate.domain.ids import new_id
from chatgate.domain.models import SessionKind, StaffAccount
from chatgate.domain.password_policy import password_problem
from chatgate.errors import EmailTaken, InvalidCredentials, NotAuthenticated, ValidationFailed
from chatgate.services.context import Caller, Principal, ServiceContext, audit
from chatgate.services.projects import staff_id_of
from chatgate.services.sessions import SessionService


@dataclass(frozen=True)
class StaffSignIn:
    account: StaffAccount
    token: str


# Tiledesk's clients send Basic credentials with every request. Once a pair has passed the password
# check, this process trusts it for a minute without argon2id or the sign-in counts, so that a client
# is not throttled by its own successes; a wrong password is never remembered, and always counted.
BASIC_REMEMBER_SECONDS = 60.0
MAX_REMEMBERED = 10_000


class StaffService:
    def __init__(self, ctx: ServiceContext, sessions: SessionService) -> None:
        self.ctx = ctx
        self.sessions = sessions
        self._basic_key = secrets.token_bytes(32)  # remembered pairs are kept as keyed digests only
        self._basic_passed: dict[bytes, tuple[str, float]] = {}

    async def sign_up(self, email: str, password: str, firstname: str, lastname: str, caller: Caller) -> StaffAccount:
        problem = password_problem(password)
        if problem:
            raise ValidationFailed({"password": problem})
        await self.ctx.limiter.hit("signup_ip", caller.ip)
        async with self.ctx.storage.read() as tx:
            if await tx.staff.by_email(email) is not None:
                raise EmailTaken()
        password_hash = await self.ctx.passwords.hash_async(password)
        now = self.ctx.clock()
        account = StaffAccount(new_id(), email, firstname, lastname, False, password_hash, now, now)
        async with self.ctx.storage.write() as tx:
            # The unique index decides between two simultaneous sign-ups.
            if not await tx.staff.add(account):
                raise EmailTaken()
            await audit(
                tx, now, AuditAction.STAFF_SIGNED_UP, caller=caller, subject_id=account.id, actor=("staff", account.id)
            )
        return account

    async def sign_in(self, email: str, password: str, caller: Caller) -> StaffSignIn:
        account = await self._check_password(email, password, caller, "password")
        now = self.ctx.clock()
        async with self.ctx.storage.write() as tx:
            session = await self.sessions.record(tx, SessionKind.STAFF, account.id, None, now, "password")
            await audit(
                tx,
                now,
                AuditAction.STAFF_SIGNIN_SUCCEEDED,
                caller=caller,
                subject_id=account.id,
                actor=("staff", account.id),
            )
        return StaffSignIn(account, self.sessions.sign(session))

    async def authenticate_basic(self, email: str, password: str, caller: Caller) -> Principal:
        """A staff request with HTTP Basic credentials (Tiledesk's clients), when the deployment allows them.

        A pair not seen to pass within the last minute is a sign-in attempt:
        the same throttles and counters, the same password check, failures
        audited the same way. No session is stored (``session_id`` is empty),
        and a success is not audited: it would be one row per request.
        """
        if not self.ctx.settings.staff_basic_auth:
            raise NotAuthenticated(
                "HTTP Basic authentication is turned off on this server (CHATGATE_STAFF_BASIC_AUTH):"
                " sign in and send the session token."
            )
        digest = hmac.new(self._basic_key, f"{email}\0{password}".encode(), hashlib.sha256).digest()
        remembered = self._basic_passed.get(digest)
        if remembered is not None and time.monotonic() < remembered[1]:
            return Principal(SessionKind.STAFF, "", remembered[0], None)
        account = await self._check_password(email, password, caller, "basic")
        if len(self._basic_passed) >= MAX_REMEMBERED:
            self._basic_passed.clear()
        self._basic_passed[digest] = (account.id, time.monotonic() + BASIC_REMEMBER_SECONDS)
        return Principal(SessionKind.STAFF, "", account.id, None)

    async def _check_password(self, email: str, password: str, caller: Caller, method: str) -> StaffAccount:
        """The account, if the password is its own; counted by the sign-in throttles first, failures audited."""
        limiter = self.ctx.limiter
        await limiter.hit("signin_ip", caller.ip)
        await limiter.hit("signin_account", limiter.account_key("staff", email, caller.ip))
        async with self.ctx.storage.read() as tx:
            account = await tx.staff.by_email(email)
        # Verify even for unknown emails, so both failures take the same time.
        valid = await self.ctx.passwords.verify_async(account.password_hash if account else None, password)
        if account is None or not valid:
            async with self.ctx.storage.write() as tx:
                await audit(
                    tx,
                    self.ctx.clock(),
                    AuditAction.STAFF_SIGNIN_FAILED,
                    caller=caller,
                    subject_id=account.id if account else None,
                    method=method,
                )
            raise InvalidCredentials()
        return account

    async def me(self, caller: Caller) -> StaffAccount:
        """The account behind the calling staff session."""
        staff_id = staff_id_of(caller)
        async with self.ctx.storage.read() as tx:
            account = await tx.staff.by_id(staff_id)
        if account is None:
            raise NotAuthenticated()
        return account
