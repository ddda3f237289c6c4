"""Users (argon2-hashed passwords) and API keys (shown once, stored as SHA-256)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from splitlab.domain import Principal, Role, Scope
from splitlab.errors import ConflictError, NotFoundError, ValidationError
from splitlab.store.audit import write_audit
from splitlab.store.tables import ApiKeyRow, UserRow

_hasher = PasswordHasher()
KEY_PREFIX = "slk"
MIN_PASSWORD_LENGTH = 8


def create_user(
    *, session: Session, username: str, password: str, role: Role, actor: str = "cli"
) -> UserRow:
    if not username or len(username) > 100:
        raise ValidationError("username must be 1–100 characters", details=[{"loc": ["username"]}])
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"password must have at least {MIN_PASSWORD_LENGTH} characters",
            details=[{"loc": ["password"], "msg": "too short"}],
        )
    if session.scalar(select(UserRow.id).where(UserRow.username == username)) is not None:
        raise ConflictError(f"user {username!r} exists")
    user = UserRow(username=username, password_hash=_hasher.hash(password), role=role.value)
    session.add(user)
    session.flush()
    write_audit(
        session=session,
        entity="user",
        entity_key=username,
        action="create",
        actor=actor,
        snapshot={"username": username, "role": role.value},
    )
    return user


def get_user(*, session: Session, username: str) -> UserRow:
    user = session.scalar(select(UserRow).where(UserRow.username == username))
    if user is None:
        raise NotFoundError(f"no user {username!r}")
    return user


def authenticate_password(*, session: Session, username: str, password: str) -> Principal | None:
    user = session.scalar(select(UserRow).where(UserRow.username == username))
    if user is None or not user.active:
        _hasher.hash(password)  # same work either way: no user enumeration by timing
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerifyMismatchError, VerificationError):
        return None
    return Principal(username=user.username, role=Role(user.role))


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(
    *, session: Session, username: str, scope: Scope, name: str = "", actor: str = "cli"
) -> str:
    """Create a key for ``username``; returns the plain key, which is never stored."""
    user = get_user(session=session, username=username)
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    session.add(
        ApiKeyRow(
            prefix=prefix, key_hash=_digest(key), name=name, scope=scope.value, user_id=user.id
        )
    )
    session.flush()
    write_audit(
        session=session,
        entity="api_key",
        entity_key=prefix,
        action="create",
        actor=actor,
        snapshot={"user": username, "scope": scope.value, "name": name},
    )
    return key


def authenticate_api_key(*, session: Session, key: str) -> Principal | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == parts[1]))
    if row is None or row.revoked_at is not None or not row.user.active:
        return None
    if not hmac.compare_digest(row.key_hash, _digest(key)):
        return None
    return Principal(username=row.user.username, role=Role(row.user.role), scope=Scope(row.scope))


def revoke_api_key(*, session: Session, prefix: str, actor: str) -> None:
    row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix))
    if row is None:
        raise NotFoundError(f"no API key {prefix!r}")
    row.revoked_at = datetime.now(UTC)
    write_audit(session=session, entity="api_key", entity_key=prefix, action="revoke", actor=actor)


def list_api_keys(*, session: Session) -> list[ApiKeyRow]:
    return list(session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id)))
