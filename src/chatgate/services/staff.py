"""Staff accounts (agents and admins): sign-up and sign-in, Tiledesk style."""

from __future__ import annotations

from dataclasses import dataclass

from chatgate.domain.audit import AuditAction
from chatgate.domain.ids import new_id
from chatgate.domain.models import SessionKind, StaffAccount
from chatgate.domain.password_policy import password_problem
from chatgate.errors import EmailTaken, InvalidCredentials, NotAuthenticated, ValidationFailed
from chatgate.services.context import Caller, ServiceContext, audit
from chatgate.services.projects import staff_id_of
from chatgate.services.sessions import SessionService


@dataclass(frozen=True)
class StaffSignIn:
    account: StaffAccount
    token: str


class StaffService:
    def __init__(self, ctx: ServiceContext, sessions: SessionService) -> None:
        self.ctx = ctx
        self.sessions = sessions

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
        limiter = self.ctx.limiter
        await limiter.hit("signin_ip", caller.ip)
        await limiter.hit("signin_account", limiter.account_key("staff", email, caller.ip))
        async with self.ctx.storage.read() as tx:
            account = await tx.staff.by_email(email)
        # Verify even for unknown emails, so both failures take the same time.
        valid = await self.ctx.passwords.verify_async(account.password_hash if account else None, password)
        now = self.ctx.clock()
        if account is None or not valid:
            async with self.ctx.storage.write() as tx:
                await audit(
                    tx, now, AuditAction.STAFF_SIGNIN_FAILED, caller=caller, subject_id=account.id if account else None
                )
            raise InvalidCredentials()
        async with self.ctx.storage.write() as tx:
            session = await self.sessions.record(tx, SessionKind.STAFF, account.id, None, now)
            await audit(
                tx,
                now,
                AuditAction.STAFF_SIGNIN_SUCCEEDED,
                caller=caller,
                subject_id=account.id,
                actor=("staff", account.id),
            )
        return StaffSignIn(account, self.sessions.sign(session))

    async def me(self, caller: Caller) -> StaffAccount:
        """The account behind the calling staff session."""
        staff_id = staff_id_of(caller)
        async with self.ctx.storage.read() as tx:
            account = await tx.staff.by_id(staff_id)
        if account is None:
            raise NotAuthenticated()
        return account
