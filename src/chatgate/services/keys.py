"""Project signing secrets and API keys (contract §3)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from chatgate.crypto.secrets import api_key_prefix, hash_api_key, new_api_key, new_signing_secret, same_hash
from chatgate.crypto.tokens import VerificationKey
from chatgate.domain.audit import AuditAction
from chatgate.domain.ids import new_id
from chatgate.domain.models import ApiKey, Project
from chatgate.errors import ApiKeyNotFound, Forbidden, InvalidApiKey, TokenRejected
from chatgate.services.context import Caller, ServiceContext, audit
from chatgate.services.ports import Transaction
from chatgate.services.projects import project_changed, require_role

# Kustomer's rule: reading the chat secret takes a key with both roles.
SECRET_READER_ROLES = frozenset({"org.admin", "org.user"})
# Kustomer's role for customer data: reading the project's users (and posting as its backend) takes it.
USER_READER_ROLE = "org.user"
MAX_CACHED_KEYS = 4096
# An API key's lastUsedAt is kept to the minute: a key used again within it writes nothing.
KEY_USE_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class CreatedApiKey:
    api_key: ApiKey
    key: str


async def live_api_key(tx: Transaction, presented_key: str, now: datetime) -> ApiKey:
    """The stored key behind ``presented_key``, unless unknown, revoked or expired (401 ``invalid_api_key``)."""
    prefix = api_key_prefix(presented_key)
    api_key = await tx.api_keys.by_prefix(prefix) if prefix else None
    if (
        api_key is None
        or not same_hash(api_key.key_hash, hash_api_key(presented_key))
        or api_key.revoked_at is not None
        or (api_key.expires_at is not None and api_key.expires_at <= now)
    ):
        raise InvalidApiKey()
    return api_key


def _use_due(api_key: ApiKey, now: datetime) -> bool:
    """Whether an accepted use moves ``lastUsedAt`` (kept to the minute)."""
    return api_key.last_used_at is None or now - api_key.last_used_at >= KEY_USE_RESOLUTION


async def note_key_use(ctx: ServiceContext, api_key: ApiKey | None) -> None:
    """After a use the key (if any) was accepted for: move its ``lastUsedAt``, in a write of its own."""
    now = ctx.clock()
    if api_key is not None and _use_due(api_key, now):
        async with ctx.storage.write() as tx:
            await tx.api_keys.used(api_key.id, now)


class KeyService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        # Keyed by the sealed secret itself, so a rotated secret is a new entry
        # and the cache can never answer with a key the database no longer holds.
        self._keys: dict[tuple[str, bytes], VerificationKey] = {}

    # -- signing secrets ---------------------------------------------------

    async def generate_signing_secret(self, project_id: str, caller: Caller) -> str:
        now = self.ctx.clock()
        async with self.ctx.storage.write() as tx:
            await require_role(tx, project_id, caller)
            return await self._rotate(tx, project_id, now, caller)

    async def _rotate(self, tx: Transaction, project_id: str, now: datetime, caller: Caller) -> str:
        secret = new_signing_secret()
        await tx.projects.set_secret(project_id, self.ctx.secret_box.seal(project_id, secret), now)
        await tx.events.add(project_changed(project_id))
        await audit(tx, now, AuditAction.SIGNING_KEY_GENERATED, caller=caller, project_id=project_id)
        return secret

    def verification_key(self, project: Project) -> VerificationKey:
        """The one key (and so the one algorithm) customer tokens of this project must use."""
        if project.secret_ciphertext is None:
            raise TokenRejected("unknown_key", "This project has no signing secret yet.")
        cache_key = (project.id, project.secret_ciphertext)
        key = self._keys.get(cache_key)
        if key is None:
            secret = self.ctx.secret_box.open(project.id, project.secret_ciphertext)
            key = VerificationKey.hmac(secret.encode(), "HS256")
            if len(self._keys) >= MAX_CACHED_KEYS:
                self._keys.clear()
            self._keys[cache_key] = key
        return key

    # -- API keys ----------------------------------------------------------

    async def create_api_key(
        self, project_id: str, name: str, roles: list[str], expires_in_days: int | None, caller: Caller
    ) -> CreatedApiKey:
        now = self.ctx.clock()
        made = new_api_key()
        expires = now + timedelta(days=expires_in_days) if expires_in_days is not None else None
        api_key = ApiKey(
            new_id(), project_id, name, tuple(sorted(set(roles))), made.prefix, made.key_hash, now, expires
        )
        async with self.ctx.storage.write() as tx:
            await require_role(tx, project_id, caller)
            await tx.api_keys.add(api_key)
            await audit(
                tx,
                now,
                AuditAction.API_KEY_CREATED,
                caller=caller,
                project_id=project_id,
                subject_id=api_key.id,
                name=name,
                roles=list(api_key.roles),
            )
        return CreatedApiKey(api_key, made.key)

    async def list_api_keys(self, project_id: str, caller: Caller) -> list[ApiKey]:
        async with self.ctx.storage.read() as tx:
            await require_role(tx, project_id, caller)
            return await tx.api_keys.for_project(project_id)

    async def revoke_api_key(self, project_id: str, key_id: str, caller: Caller) -> None:
        now = self.ctx.clock()
        async with self.ctx.storage.write() as tx:
            await require_role(tx, project_id, caller)
            if not await tx.api_keys.revoke(project_id, key_id, now):
                raise ApiKeyNotFound()
            await audit(tx, now, AuditAction.API_KEY_REVOKED, caller=caller, project_id=project_id, subject_id=key_id)

    async def customer_settings_secret(self, presented_key: str, caller: Caller) -> str:
        """Kustomer's ``GET /v1/auth/customer/settings``: the signing secret, for a key with both roles."""
        now = self.ctx.clock()
        async with self.ctx.storage.write() as tx:
            api_key = await live_api_key(tx, presented_key, now)
            if not set(api_key.roles) >= SECRET_READER_ROLES:
                await audit(
                    tx,
                    now,
                    AuditAction.API_KEY_REJECTED,
                    caller=caller,
                    project_id=api_key.project_id,
                    subject_id=api_key.id,
                    reason="insufficient_role",
                    actor=("api_key", api_key.id),
                )
                forbidden = True
            else:
                forbidden = False
                if _use_due(api_key, now):
                    await tx.api_keys.used(api_key.id, now)
                project = await tx.projects.get(api_key.project_id)
                assert project is not None
                actor_caller = Caller(caller.ip)
                if project.secret_ciphertext is None:
                    secret = await self._rotate(tx, project.id, now, actor_caller)
                else:
                    secret = self.ctx.secret_box.open(project.id, project.secret_ciphertext)
                await audit(
                    tx,
                    now,
                    AuditAction.SECRET_READ,
                    caller=actor_caller,
                    project_id=project.id,
                    subject_id=api_key.id,
                    actor=("api_key", api_key.id),
                )
        if forbidden:
            raise Forbidden("This API key needs both the org.admin and org.user roles.")
        return secret
