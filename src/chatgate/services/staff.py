"""Staff accounts (agents and admins): sign-up and sign-in, Tiledesk style."""

from __future__ import annotations

from dataclasses import dataclass

from chatgate.domain.audit import AuditAction
from chatgate.domain.ids import new_id
from chatgate.domain.models import SessionKind, StaffAccount
from chatgate.domain.password_policy import password_problem
from chatgate.errors import EmailTaken, InvalidCredentials, ValidationFailed
from chatgate.services.context import Caller, ServiceContext, audit
from chatgate.services.sessions import SessionService


@dataclass(frozen=True)
class StaffSignIn:
    account: StaffAccount
    token: str


class StaffService:
    def __init__(self, ctx: ServiceContext, sessions: SessionService) -> None:
        self.ctx = ctx
        self.sessions = sessions

    def sign_up(self, email: str, password: str, firstname: str, lastname: str, caller: Caller) -> StaffAccount:
        problem = password_problem(password)
        if problem:
            raise ValidationFailed({"password": problem})
        self.ctx.limiter.hit("signup_ip", caller.ip)
        with self.ctx.db.read() as store:
            if store.staff.by_email(email) is not None:
                raise EmailTaken()
        password_hash = self.ctx.passwords.hash(password)
        now = self.ctx.clock()
        account = StaffAccount(new_id(), email, firstname, lastname, False, password_hash, now, now)
        with self.ctx.db.write() as store:
            # The unique index decides between two simultaneous sign-ups.
            if not store.staff.add(account):
                raise EmailTaken()
            audit(
                store,
                now,
                AuditAction.STAFF_SIGNED_UP,
                caller=caller,
                subject_id=account.id,
                actor=("staff", account.id),
            )
        return account

    def sign_in(self, email: str, password: str, caller: Caller) -> StaffSignIn:
        self.ctx.limiter.hit("signin_ip", caller.ip)
        self.ctx.limiter.hit("signin_account", f"staff:{email}:{caller.ip}")
        with self.ctx.db.read() as store:
            account = store.staff.by_email(email)
        # Verify even for unknown emails, so both failures take the same time.
        valid = self.ctx.passwords.verify(account.password_hash if account else None, password)
        now = self.ctx.clock()
        with self.ctx.db.write() as store:
            if account is None or not valid:
                audit(
                    store,
                    now,
                    AuditAction.STAFF_SIGNIN_FAILED,
                    caller=caller,
                    subject_id=account.id if account else None,
                )
            else:
                opened = self.sessions.open(store, SessionKind.STAFF, account.id, None, now)
                audit(
                    store,
                    now,
                    AuditAction.STAFF_SIGNIN_SUCCEEDED,
                    caller=caller,
                    subject_id=account.id,
                    actor=("staff", account.id),
                )
        if account is None or not valid:
            raise InvalidCredentials()
        return StaffSignIn(account, opened.token)
