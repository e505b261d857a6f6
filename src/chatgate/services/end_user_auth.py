"""Every way an end user gets in: anonymous, custom token, external auth code,
customer login and email — and what they share: verify, find or create
within the seat limit, merge the visitor, open a session.

A token sign-in reads top to bottom in three steps, so that only what must
be written holds a write transaction (on SQLite, a savepoint of the shared
group commit): the project and the token are checked with reads, the user,
session and audit rows are written in one ``storage.write()`` block
(``_log_in``), and the session token is signed after the commit. Email
sign-ins do the same around argon2id, which runs on its own pool.

Inside that block, a login with nothing to decide after the user is read is
handed to storage whole (``_write_at_once``): a returning user it changes
nothing on but ``lastSeenAt`` (domain/login_effects.py), or a new user of a
project without a seat limit. On PostgreSQL each is one statement that
writes only when its conditions hold; any other login, or one the
statement declines, is written step by step (``_write_login``).

The token tester (services/token_check.py) goes the same way, through
``read_token_for`` and ``rehearse_login``: the same checks, then the same
writes in a transaction that is rolled back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from chatgate.crypto import tokens
from chatgate.crypto.compact import unverified_claims
from chatgate.domain import dialects
from chatgate.domain.audit import AuditAction
from chatgate.domain.conversations import Event, EventType, conversation_view
from chatgate.domain.identity import Lookup
from chatgate.domain.ids import looks_like_id, new_id
from chatgate.domain.login_effects import (
    CreateAtOnce,
    FoundUser,
    SignInAtOnce,
    gives_external_id,
    profile_updates,
    seen_is_due,
    takes_typed_email,
    unchanged_by,
)
from chatgate.domain.models import AuditEvent, CreatedVia, EndUser, NewEndUser, Project, Session, SessionKind
from chatgate.domain.password_policy import password_problem
from chatgate.domain.webhooks import WebhookEvent, user_view
from chatgate.errors import (
    AuthMethodDisabled,
    DomainError,
    EmailTaken,
    IdentityConflict,
    InvalidCredentials,
    NotAuthenticated,
    ProjectNotFound,
    SeatLimitReached,
    TokenRejected,
    UserNotFound,
    ValidationFailed,
)
from chatgate.services.context import Caller, ServiceContext, audit, audit_event
from chatgate.services.keys import KeyService
from chatgate.services.ports import Transaction
from chatgate.services.sessions import SessionService
from chatgate.services.webhooks import enqueue

# Projects tried for one custom token whose aud several projects accept.
MAX_AUDIENCE_CANDIDATES = 16

# How a dialect turns verified claims into a login, given the project and the time.
Dialect = Callable[[Project, dict[str, Any], float], dialects.LoginClaim]


@dataclass(frozen=True)
class EndUserLogin:
    user: EndUser
    token: str
    created: bool
    merged_conversations: int


@dataclass(frozen=True)
class _Written:
    """What a login's transaction wrote."""

    user: EndUser
    created: bool
    merged: int
    session: Session


@dataclass(frozen=True)
class _Attempt:
    """One login about to be written: who to find, what to create, what to consume."""

    project: Project
    claim: dialects.LoginClaim
    method: str  # audit label
    anonymous_token: str | None


def _custom_token(_project: Project, claims: dict[str, Any], _now: float) -> dialects.LoginClaim:
    return dialects.custom_token(claims)


def _external_auth_code(_project: Project, claims: dict[str, Any], _now: float) -> dialects.LoginClaim:
    return dialects.external_auth_code(claims)


def _customer_login(project: Project, claims: dict[str, Any], now: float) -> dialects.LoginClaim:
    settings = project.effective_settings
    return dialects.customer_login(claims, now, settings["max_token_age_seconds"], settings["leeway_seconds"])


@dataclass(frozen=True)
class TokenWay:
    """One of the three token sign-ins: its label (audit log, metrics) and its dialect."""

    label: str
    dialect: Dialect


# By the names the token tester takes.
TOKEN_WAYS = {
    "external_code": TokenWay("external_auth_code", _external_auth_code),
    "custom_token": TokenWay("custom_token", _custom_token),
    "customer_login": TokenWay("customer_login", _customer_login),
}


# Refusals that a newer signing secret could turn into an acceptance.
KEY_REASONS = frozenset({"bad_signature", "unknown_key"})


class EndUserAuthService:
    def __init__(self, ctx: ServiceContext, sessions: SessionService, keys: KeyService) -> None:
        self.ctx = ctx
        self.sessions = sessions
        self.keys = keys

    # -- the ways in -------------------------------------------------------

    async def sign_in_anonymously(
        self, project_id: str, firstname: str | None, lastname: str | None, email: str | None, caller: Caller
    ) -> EndUserLogin:
        """A new visitor. An email it gives is kept unverified, and identifies nobody: no login finds a
        visitor by it, and it holds no email a user of the project may want (storage keeps visitors
        out of the email's unique index)."""
        project = await self._project(project_id)
        self._require_method(project, "anonymous")
        await self.ctx.limiter.hit("anonymous_ip", caller.ip)
        visitor = NewEndUser(CreatedVia.ANONYMOUS, email=email, firstname=firstname, lastname=lastname, anonymous=True)
        now = self.ctx.clock()
        async with self.ctx.storage.write() as tx:
            user = await self._create(tx, project, visitor, caller, now)
            assert user is not None  # a visitor has no unique key to collide on
            session = await self.sessions.record(tx, SessionKind.END_USER, user.id, project.id, now, "anonymous")
            await enqueue(tx, project.id, _signed_in(user, "anonymous", created=True), now)
        self.ctx.sign_ins.signed_in("anonymous")
        return EndUserLogin(user, self.sessions.sign(session), True, 0)

    async def sign_in_with_custom_token(self, token: str, caller: Caller, anonymous_token: str | None) -> EndUserLogin:
        """Tiledesk: the project is the one the token's ``aud`` names."""
        way = TOKEN_WAYS["custom_token"]
        try:
            project = await self._project_for_audience(token, unverified_claims(token))
        except TokenRejected as rejection:
            await self._record_refusal(None, rejection, caller, way.label)
            raise
        return await self._token_login(project, token, way, caller, anonymous_token)

    async def exchange_external_code(
        self, project_id: str, code: str, caller: Caller, anonymous_token: str | None
    ) -> EndUserLogin:
        """TypingMind ``externalAuthCode``, from a link, the widget or an API call."""
        project = await self._project(project_id)
        return await self._token_login(project, code, TOKEN_WAYS["external_code"], caller, anonymous_token)

    async def customer_login(
        self, project_id: str, jwt: str, caller: Caller, anonymous_token: str | None
    ) -> EndUserLogin:
        """Kustomer ``login({jwtToken})``: fresh ``iat`` required, email wins over externalId."""
        project = await self._project(project_id)
        return await self._token_login(project, jwt, TOKEN_WAYS["customer_login"], caller, anonymous_token)

    async def email_sign_up(
        self,
        project_id: str,
        email: str,
        password: str,
        firstname: str | None,
        lastname: str | None,
        caller: Caller,
        anonymous_token: str | None,
    ) -> EndUserLogin:
        project = await self._project(project_id)
        self._require_method(project, "email")
        problem = password_problem(password)
        if problem:
            raise ValidationFailed({"password": problem})
        await self.ctx.limiter.hit("signup_ip", caller.ip)
        if await self._find(project.id, Lookup("email", email)) is not None:
            raise EmailTaken()
        profile = NewEndUser(
            CreatedVia.EMAIL,
            email=email,
            firstname=firstname,
            lastname=lastname,
            password_hash=await self.ctx.passwords.hash_async(password),
        )
        claim = dialects.LoginClaim(Lookup("email", email), profile)
        try:
            return await self._log_in(
                _Attempt(project, claim, "email_signup", anonymous_token), caller, must_create=True
            )
        except IdentityConflict as exc:
            raise EmailTaken() from exc

    async def email_sign_in(
        self, project_id: str, email: str, password: str, caller: Caller, anonymous_token: str | None
    ) -> EndUserLogin:
        project = await self._project(project_id)
        self._require_method(project, "email")
        limiter = self.ctx.limiter
        await limiter.hit("signin_ip", caller.ip)
        await limiter.hit("signin_account", limiter.account_key(project.id, email, caller.ip))
        user = await self._find(project.id, Lookup("email", email))
        # Verified even for unknown emails, so both failures take the same time.
        valid = await self.ctx.passwords.verify_async(user.password_hash if user else None, password)
        if user is None or not valid:
            await self._record_wrong_password(project.id, user, caller)
            raise InvalidCredentials()
        # The account whose password was checked, by its id: should a vouched login have claimed the email
        # meanwhile (that account displaced, a new one holding the email), the password opens nothing.
        claim = dialects.LoginClaim(Lookup("id", user.id), None)
        try:
            return await self._log_in(_Attempt(project, claim, "email", anonymous_token), caller)
        except UserNotFound as displaced:
            raise InvalidCredentials() from displaced

    async def me(self, session_token: str, project_id: str) -> EndUser:
        """The user behind an end-user session of this project (one statement)."""
        user = await self._session_user(session_token, project_id)
        if user is None:
            raise NotAuthenticated("Send an end-user session of this project.")
        return user

    async def logged_in_as(
        self, session_token: str | None, project_id: str, email: str | None, external_id: str | None
    ) -> EndUser | None:
        """Kustomer's ``isLoggedIn({email} | {externalId})``: the session's user if the session is a live
        end-user session of this project and its user is that person, else None (a session that ended is
        an answer here, not a refusal). A visitor's typed email names nobody."""
        user = await self._session_user(session_token, project_id) if session_token else None
        if user is None:
            return None
        if email is not None and (user.anonymous or email != user.email):
            return None
        if external_id is not None and external_id != user.external_id:
            return None
        return user

    async def _session_user(self, session_token: str, project_id: str) -> EndUser | None:
        claims = self.sessions.peek(session_token)
        if claims is None:
            return None
        # One statement, or on PostgreSQL usually none (the process's copy: services/caches.py).
        kept = await self.ctx.session_users.get(str(claims.get("sid")))
        if kept is None:
            return None
        session, user = kept
        if self.sessions.is_live(session, claims) and session.kind is SessionKind.END_USER:
            return user if session.project_id == project_id else None
        return None

    # -- trying a token without signing in (the token tester) ---------------

    async def read_token_for(self, project: Project, token: str, method: str) -> tuple[Project, dialects.LoginClaim]:
        """What the token sign-in ``method`` (a TOKEN_WAYS name) checks before it writes anything, for
        this project: ``aud`` naming it (custom token), the way in enabled, the token verified and read.

        Raises the refusal that sign-in would give; records nothing.
        """
        way = TOKEN_WAYS[method]
        if method == "custom_token":
            named = await self._project_for_audience(token, unverified_claims(token))
            if named.id != project.id:
                raise TokenRejected("wrong_audience", "aud names another project, not this one.")
        self._require_method(project, "external_jwt")
        return await self._read_token(project, token, way.dialect)

    async def rehearse_login(
        self, project: Project, claim: dialects.LoginClaim, method: str, caller: Caller
    ) -> tuple[EndUser, bool]:
        """The login ``claim`` leads to, written as a real one is but in a transaction that is rolled back:
        the user it signs in or creates, and whether it creates it.

        Raises the refusal the login would give (a used jti, no free seat, a
        conflict); nothing is created, changed, consumed or recorded.
        """
        attempt = _Attempt(project, claim, TOKEN_WAYS[method].label, None)
        async with self.ctx.storage.rehearsal() as tx:
            written = await self._write_login(tx, attempt, caller, self.ctx.clock(), must_create=False)
        return written.user, written.created

    # -- checking a token --------------------------------------------------

    async def _token_login(
        self, project: Project, token: str, way: TokenWay, caller: Caller, anonymous_token: str | None
    ) -> EndUserLogin:
        """A token sign-in: the way in enabled, the token verified and read, then the login written."""
        self._require_method(project, "external_jwt")
        try:
            project, claim = await self._read_token(project, token, way.dialect)
        except TokenRejected as rejection:
            await self._record_refusal(project.id, rejection, caller, way.label)
            raise
        return await self._log_in(_Attempt(project, claim, way.label, anonymous_token), caller)

    async def _read_token(self, project: Project, token: str, dialect: Dialect) -> tuple[Project, dialects.LoginClaim]:
        """The token verified and read for the project (as stored now, should its key have just changed)."""
        try:
            return project, self._verify(project, token, dialect)
        except TokenRejected as rejection:
            # A copy of the project read before a key rotation another process just committed: check again.
            fresh = await self.ctx.projects.fresh(project) if rejection.reason in KEY_REASONS else project
            if fresh is None or fresh is project or fresh.secret_ciphertext == project.secret_ciphertext:
                raise
            return await self._read_token(fresh, token, dialect)

    def _verify(self, project: Project, token: str, dialect: Dialect) -> dialects.LoginClaim:
        settings = project.effective_settings
        now = self.ctx.clock().timestamp()
        key = self.keys.verification_key(project)
        _header, claims = tokens.verify(token, key)
        dialects.check_times(claims, now, dialects.TimePolicy(settings["leeway_seconds"], settings["require_exp"]))
        return dialect(project, claims, now)

    async def _project(self, project_id: str) -> Project:
        project = await self.ctx.projects.get(project_id) if looks_like_id(project_id) else None
        if project is None:
            raise ProjectNotFound()
        return project

    @staticmethod
    def _require_method(project: Project, method: str) -> None:
        if not project.effective_settings["auth_methods"].get(method, False):
            raise AuthMethodDisabled()

    async def _project_for_audience(self, token: str, claims: dict[str, Any]) -> Project:
        """The project a custom token's ``aud`` names.

        ``<CHATGATE_PUBLIC_URL>/projects/<pid>`` names one project; an accepted
        audience may be listed by several, and then the token belongs to the
        one whose key verifies it (no answer tells which others exist).
        """
        own_prefix = f"{self.ctx.settings.public_url}/projects/"
        found: dict[str, Project] = {}
        for aud in dialects.audiences(claims):
            if aud.startswith(own_prefix) and looks_like_id(aud[len(own_prefix) :]):
                project_ids = [aud[len(own_prefix) :]]
            else:
                async with self.ctx.storage.read() as tx:
                    project_ids = (await tx.projects.for_audience(aud))[:MAX_AUDIENCE_CANDIDATES]
                # The audience Tiledesk's documents tell customers to sign names the project by its id too
                # (a migrating customer's old Tiledesk id is one of its accepted audiences instead).
                tiledesk_id = dialects.tiledesk_project_id(aud)
                if tiledesk_id is not None and looks_like_id(tiledesk_id) and tiledesk_id not in project_ids:
                    project_ids.append(tiledesk_id)
            for project_id in project_ids:
                project = found.get(project_id) or await self.ctx.projects.get(project_id)
                if project is not None:
                    found[project.id] = project
        if not found:
            raise TokenRejected("wrong_audience", "aud names no project of this server.")
        candidates = list(found.values())
        if len(candidates) == 1:
            return candidates[0]
        verifying = [p for p in candidates if self._signature_holds(p, token)]
        if len(verifying) != 1:
            raise TokenRejected("bad_signature", "No project named by aud verifies this token's signature.")
        return verifying[0]

    def _signature_holds(self, project: Project, token: str) -> bool:
        try:
            tokens.verify(token, self.keys.verification_key(project))
        except TokenRejected:
            return False
        return True

    # -- writing a login ---------------------------------------------------

    async def _log_in(self, attempt: _Attempt, caller: Caller, must_create: bool = False) -> EndUserLogin:
        """Find or create the user, consume the jti, merge the visitor and store a session: one transaction."""
        now = self.ctx.clock()
        try:
            async with self.ctx.storage.write() as tx:
                written = await self._write_login(tx, attempt, caller, now, must_create)
        except DomainError as refusal:
            await self._record_refusal(attempt.project.id, refusal, caller, attempt.method)
            raise
        self.ctx.sign_ins.signed_in(attempt.method)
        return EndUserLogin(written.user, self.sessions.sign(written.session), written.created, written.merged)

    async def _write_login(
        self, tx: Transaction, attempt: _Attempt, caller: Caller, now: datetime, must_create: bool
    ) -> _Written:
        """Every write of a login, in the caller's transaction; a refusal raises."""
        project, claim = attempt.project, attempt.claim
        if claim.jti is not None and not await tx.token_ids.consume(
            project.id, claim.jti, _forget_after(claim.expires_at, project.effective_settings["leeway_seconds"])
        ):
            raise TokenRejected("replayed", "This token has already been used.")
        if must_create:
            user = None
        elif attempt.anonymous_token:  # a visitor to merge: more to write than the session
            user = await tx.end_users.find(project.id, claim.lookup)
        else:
            outcome = await self._write_at_once(tx, attempt, caller, now)
            if isinstance(outcome, _Written):
                return outcome
            user = outcome
        if user is not None and takes_typed_email(claim, user):
            # A signed token never lands in an account that only typed its email.
            if claim.new_user is None:
                raise UserNotFound()
            await self._displace(tx, project, user, caller, now, attempt.method)
            user = None
        created = False
        if user is None:
            user, created = await self._provision(tx, project, claim, caller, now, adopt=not must_create)
        else:
            user = await self._refresh(tx, user, claim.new_user, now)
        attached = None
        if claim.attach_external_id is not None and gives_external_id(claim, user):
            attached = await self._attach_external_id(tx, project, user, claim.attach_external_id)
            user = replace(user, external_id=attached or user.external_id)
        merged = await self._merge_visitor(tx, project, user, attempt.anonymous_token, caller, now)
        session = await self.sessions.record(tx, SessionKind.END_USER, user.id, project.id, now, attempt.method)
        await tx.audit.add(
            _signed_in_audit(now, caller, project.id, user.id, attempt.method, created=created, attached=attached)
        )
        await enqueue(tx, project.id, _signed_in(user, attempt.method, created=created), now)
        return _Written(user, created, merged, session)

    async def _write_at_once(
        self, tx: Transaction, attempt: _Attempt, caller: Caller, now: datetime
    ) -> _Written | EndUser | None:
        """The login written by the statement that looks for the user, when it can be: a returning user it
        changes nothing on but ``lastSeenAt``, or a new user of a project without a seat limit. Else the
        user found, if any, for the long way."""
        at_once = self._sign_in_at_once(attempt, caller, now)
        found = await tx.end_users.find_and_sign_in(at_once)
        if found.signed_in:
            return await self._recorded_at_once(tx, found, at_once)
        new = attempt.claim.new_user
        if found.user is not None or new is None:
            return found.user
        user = _new_user(new_id(), attempt.project, new, now)
        if not _may_create_at_once(attempt, user):
            return None
        creation = CreateAtOnce(
            attempt.project.id,
            user.id,
            new,
            self.sessions.new(SessionKind.END_USER, user.id, attempt.project.id, now, attempt.method),
            _user_created(now, caller, user),
            _signed_in_audit(now, caller, user.project_id, user.id, attempt.method, created=True),
            now,
        )
        if not await tx.end_users.create_and_sign_in(creation):
            return None  # its externalId or email is held, or the project has a webhook: the long way decides
        return _Written(user, True, 0, creation.session)

    def _sign_in_at_once(self, attempt: _Attempt, caller: Caller, now: datetime) -> SignInAtOnce:
        """A returning user's login, for storage to record as it finds the user if the login changes nothing
        on them but ``lastSeenAt``: the session and audit row ``_write_login`` would write."""
        project = attempt.project
        found_user = ""  # the session's subject and the audit row's actor and subject: whoever storage finds
        return SignInAtOnce(
            project.id,
            attempt.claim.lookup,
            unchanged_by(attempt.claim),
            self.sessions.new(SessionKind.END_USER, found_user, project.id, now, attempt.method),
            _signed_in_audit(now, caller, project.id, found_user, attempt.method, created=False),
            now,
        )

    @staticmethod
    async def _recorded_at_once(tx: Transaction, found: FoundUser, at_once: SignInAtOnce) -> _Written:
        assert found.user is not None
        user = found.user
        if found.seen:
            user = replace(user, last_seen_at=at_once.now)
            await tx.events.hint(_user_changed(user))
        return _Written(user, False, 0, replace(at_once.session, subject_id=user.id))

    async def _provision(
        self,
        tx: Transaction,
        project: Project,
        claim: dialects.LoginClaim,
        caller: Caller,
        now: datetime,
        *,
        adopt: bool,
    ) -> tuple[EndUser, bool]:
        """Create the user; when a unique key is already held, ``adopt`` the holder if it is the same user.

        A token login adopts (the same user signing in twice at once). A sign-up
        never does: whoever won the race owns the email, with their password.
        """
        new = claim.new_user
        if new is None:
            raise UserNotFound()
        if new.external_id is not None and await self._shadows_an_id(tx, project, new.external_id):
            raise IdentityConflict("This externalId is the _id of another user of the project.")
        created = await self._create(tx, project, new, caller, now)
        if created is None and claim.vouched and new.email is not None:
            # The email may be held by an account that only typed it: the vouched identity takes it.
            holder = await tx.end_users.find(project.id, Lookup("email", new.email))
            if holder is not None and not holder.email_verified:
                await self._displace(tx, project, holder, caller, now, new.created_via.value)
                created = await self._create(tx, project, new, caller, now)
        if created is not None:
            return created, True
        existing = await tx.end_users.find(project.id, claim.lookup) if adopt else None
        if existing is None:
            raise IdentityConflict()
        return existing, False

    async def _attach_external_id(
        self, tx: Transaction, project: Project, user: EndUser, external_id: str
    ) -> str | None:
        """Give ``user`` (who has none) this externalId, unless another user of the project holds it or it
        is some user's ``_id``; the externalId when given. Anything else leaves the user as it is."""
        if user.anonymous or await self._shadows_an_id(tx, project, external_id):
            return None
        if not await tx.end_users.attach_external_id(user.id, project.id, external_id):
            return None
        await tx.events.hint(_user_changed(user))
        return external_id

    @staticmethod
    async def _shadows_an_id(tx: Transaction, project: Project, external_id: str) -> bool:
        """Would this new externalId hide another user's ``_id`` from a TypingMind ``id`` lookup?"""
        if not looks_like_id(external_id):
            return False
        holder = await tx.end_users.by_id(external_id)
        return holder is not None and holder.project_id == project.id

    async def _displace(
        self, tx: Transaction, project: Project, holder: EndUser, caller: Caller, now: datetime, method: str
    ) -> None:
        """A vouched login claims the email ``holder`` only typed (the Firebase linking rule).

        The holder loses the email and its password, its sessions end and its
        seat is freed; nothing it owns passes to the vouched identity, which is
        a new user with credentials the holder never had. Once: a login that
        raced this one to the same holder finds it displaced, and frees no
        second seat.
        """
        if not await tx.end_users.disable(holder.id, now):
            return
        await tx.sessions.revoke_subject(holder.id, now)
        await tx.events.add(sessions_ended(project.id, holder.id, "identity_claimed"))
        if not holder.anonymous:
            await tx.projects.release_seat(project.id)
        await audit(
            tx,
            now,
            AuditAction.IDENTITY_CLAIMED,
            caller=caller,
            project_id=project.id,
            subject_id=holder.id,
            method=method,
        )

    async def _create(
        self, tx: Transaction, project: Project, new: NewEndUser, caller: Caller, now: datetime
    ) -> EndUser | None:
        """Insert the user and, unless a visitor, take a seat; None when a unique key is already held."""
        user = _new_user(new_id(), project, new, now)
        if not await tx.end_users.add_if_absent(user.id, project.id, new, now):
            return None
        if not new.anonymous and not await tx.projects.take_seat(project.id, project.effective_settings["seat_limit"]):
            raise SeatLimitReached()
        await tx.audit.add(_user_created(now, caller, user))
        return user

    @staticmethod
    async def _refresh(tx: Transaction, user: EndUser, profile: NewEndUser | None, now: datetime) -> EndUser:
        """Note the visit (to the minute); take new names and metadata from the token when they changed."""
        changes = profile_updates(user, profile)
        if not changes and not seen_is_due(user, now):
            return user
        await tx.end_users.seen(user.id, now, changes)
        await tx.events.hint(_user_changed(user))
        return replace(user, last_seen_at=now, **changes)

    async def _merge_visitor(
        self,
        tx: Transaction,
        project: Project,
        user: EndUser,
        anonymous_token: str | None,
        caller: Caller,
        now: datetime,
    ) -> int:
        """Fold the anonymous visitor behind ``anonymous_token`` into ``user`` (same project only).

        A token that is not a live anonymous session of this project is ignored:
        the login itself stands, nothing is merged.
        """
        if not anonymous_token:
            return 0
        session = await self.sessions.live_session(tx, anonymous_token)
        if session is None or session.kind is not SessionKind.END_USER or session.project_id != project.id:
            return 0
        visitor = await tx.end_users.by_id(session.subject_id)
        if visitor is None or not visitor.anonymous or visitor.id == user.id:
            return 0
        moved = await tx.conversations.move_all(visitor.id, user.id, now)
        merged = [
            Event(
                EventType.CONVERSATION_MERGED,
                project.id,
                {
                    "conversationId": conversation.id,
                    "conversation": conversation_view(conversation),
                    "fromUserId": visitor.id,
                },
                user_id=user.id,
            )
            for conversation in moved
        ]
        for event in merged:
            await tx.events.add(event)
        await tx.sessions.revoke_subject(visitor.id, now)
        await tx.events.add(sessions_ended(project.id, visitor.id, "merged"))
        await tx.end_users.mark_merged(visitor.id, user.id)
        await audit(
            tx,
            now,
            AuditAction.VISITOR_MERGED,
            caller=caller,
            project_id=project.id,
            subject_id=user.id,
            visitor=visitor.id,
            conversations=len(moved),
        )
        return len(moved)

    # -- reads and refusals ------------------------------------------------

    async def _find(self, project_id: str, lookup: Lookup) -> EndUser | None:
        async with self.ctx.storage.read() as tx:
            return await tx.end_users.find(project_id, lookup)

    async def _record_wrong_password(self, project_id: str, user: EndUser | None, caller: Caller) -> None:
        self.ctx.sign_ins.refused("email", "invalid_credentials")
        async with self.ctx.storage.write() as tx:
            await audit(
                tx,
                self.ctx.clock(),
                AuditAction.USER_SIGNIN_FAILED,
                caller=caller,
                project_id=project_id,
                subject_id=user.id if user else None,
                reason="invalid_credentials",
                method="email",
            )

    async def _record_refusal(self, project_id: str | None, refusal: DomainError, caller: Caller, method: str) -> None:
        """A refused login creates nothing, but the refusal and its reason go to the audit log."""
        action = {
            TokenRejected: AuditAction.TOKEN_REJECTED,
            SeatLimitReached: AuditAction.SEAT_LIMIT_REACHED,
        }.get(type(refusal), AuditAction.USER_SIGNIN_FAILED)
        reason = refusal.reason if isinstance(refusal, TokenRejected) else refusal.code
        self.ctx.sign_ins.refused(method, reason)
        async with self.ctx.storage.write() as tx:
            await audit(
                tx, self.ctx.clock(), action, caller=caller, project_id=project_id, reason=reason, method=method
            )


def _may_create_at_once(attempt: _Attempt, user: EndUser) -> bool:
    """Whether a new user's login has nothing to decide but its unique keys: no seat limit to hold, no
    ``_id`` its externalId could hide, no externalId to give it after its creation."""
    return (
        not user.anonymous
        and attempt.project.effective_settings["seat_limit"] is None
        and not (user.external_id is not None and looks_like_id(user.external_id))
        and not gives_external_id(attempt.claim, user)
    )


def _new_user(user_id: str, project: Project, new: NewEndUser, now: datetime) -> EndUser:
    return EndUser(
        id=user_id,
        project_id=project.id,
        external_id=new.external_id,
        email=new.email,
        firstname=new.firstname,
        lastname=new.lastname,
        anonymous=new.anonymous,
        created_via=new.created_via,
        metadata=new.metadata,
        created_at=now,
        last_seen_at=now,
        password_hash=new.password_hash,
        email_verified=new.email_verified,
    )


def _user_created(now: datetime, caller: Caller, user: EndUser) -> AuditEvent:
    return audit_event(
        now,
        AuditAction.USER_CREATED,
        caller=caller,
        project_id=user.project_id,
        subject_id=user.id,
        via=user.created_via.value,
    )


def _signed_in_audit(
    now: datetime,
    caller: Caller,
    project_id: str,
    user_id: str,
    method: str,
    *,
    created: bool,
    attached: str | None = None,
) -> AuditEvent:
    """The audit row of a sign-in; ``attached``: the externalId it gave the user (Kustomer, email and
    externalId)."""
    details: dict[str, Any] = {"method": method, "created": created}
    if attached is not None:
        details["external_id_attached"] = True
    return audit_event(
        now,
        AuditAction.USER_SIGNIN_SUCCEEDED,
        caller=caller,
        project_id=project_id,
        subject_id=user_id,
        actor=("end_user", user_id),
        **details,
    )


def _forget_after(exp: float | None, leeway_seconds: int) -> datetime | None:
    """When a consumed jti may be forgotten: once its token is refused as expired, leeway included.

    None (keep for good) for a token without ``exp``, or one beyond what a datetime holds.
    """
    if exp is None:
        return None
    try:
        return datetime.fromtimestamp(exp + leeway_seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _signed_in(user: EndUser, method: str, *, created: bool) -> list[tuple[WebhookEvent, dict[str, Any]]]:
    """The webhook events of a login: ``user.signed_in``, after ``user.created`` for a new user."""
    view = user_view(user)
    events: list[tuple[WebhookEvent, dict[str, Any]]] = []
    if created:
        events.append((WebhookEvent.USER_CREATED, {"user": view}))
    events.append((WebhookEvent.USER_SIGNED_IN, {"user": view, "method": method, "created": created}))
    return events


def sessions_ended(project_id: str, user_id: str, reason: str) -> Event:
    """Every session of the user ended: their sockets close once the transaction commits."""
    return Event(EventType.SESSION_REVOKED, project_id, {"reason": reason}, user_id=user_id)


def _user_changed(user: EndUser) -> Event:
    """For the processes' copies of this user (``auth/me``): not stored, see services/caches.py."""
    return Event(EventType.USER_CHANGED, user.project_id, {}, user_id=user.id)
