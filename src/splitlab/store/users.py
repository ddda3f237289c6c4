"""Users (argon2-hashed passwords) and API keys (shown once, stored as SHA-256)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from splitlab.domain import Principal, Role, Scope
from splitlab.errors import ConflictError, NotFoundError, ValidationError
from splitlab.store.audit import write_audit
from splitlab.store.tables import ApiKeyRow, UserRow
from splitlab.store.web_sessions import end_user_sessions

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


def revoke_api_key(*, session: Session, prefix: str, actor: str, reason: str = "") -> bool:
    """Revoke a key by its prefix (the ``id`` of ``keys list``); False when it already was."""
    row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix))
    if row is None:
        raise NotFoundError(f"no API key {prefix!r}")
    if row.revoked_at is not None:
        return False
    row.revoked_at = datetime.now(UTC)
    write_audit(
        session=session,
        entity="api_key",
        entity_key=prefix,
        action="revoke",
        actor=actor,
        reason=reason,
        snapshot={"user": row.user.username, "scope": row.scope, "name": row.name},
    )
    return True


def list_api_keys(*, session: Session, username: str | None = None) -> list[ApiKeyRow]:
    query = select(ApiKeyRow).order_by(ApiKeyRow.id)
    if username is not None:
        query = query.where(ApiKeyRow.user_id == get_user(session=session, username=username).id)
    return list(session.scalars(query))


def api_key_to_dict(row: ApiKeyRow) -> dict[str, Any]:
    """A key without its secret: ``id`` is the prefix that ``keys revoke`` takes."""
    return {
        "id": row.prefix,
        "name": row.name,
        "scope": row.scope,
        "user": row.user.username,
        "userActive": row.user.active,
        "createdAt": _iso(row.created_at),
        "revokedAt": _iso(row.revoked_at),
        "active": row.revoked_at is None and row.user.active,
    }


# ---------------------------------------------------------------- user management


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def list_users(*, session: Session) -> list[UserRow]:
    return list(session.scalars(select(UserRow).order_by(UserRow.username)))


def user_to_dict(row: UserRow, *, active_keys: int = 0) -> dict[str, Any]:
    return {
        "username": row.username,
        "role": row.role,
        "active": row.active,
        "createdAt": _iso(row.created_at),
        "activeKeys": active_keys,
    }


def active_key_counts(*, session: Session) -> dict[int, int]:
    """Unrevoked API keys per user id."""
    rows = session.execute(
        select(ApiKeyRow.user_id, func.count(ApiKeyRow.id))
        .where(ApiKeyRow.revoked_at.is_(None))
        .group_by(ApiKeyRow.user_id)
    )
    return {user_id: count for user_id, count in rows}


def _keep_an_admin(session: Session, user: UserRow, change: str) -> None:
    """Refuse a change that would leave no active admin (nobody could manage users then,
    except from the CLI on the server's machine)."""
    if user.role != Role.ADMIN.value or not user.active:
        return
    others = session.scalar(
        select(func.count(UserRow.id)).where(
            UserRow.role == Role.ADMIN.value, UserRow.active.is_(True), UserRow.id != user.id
        )
    )
    if not others:
        raise ConflictError(
            f"cannot {change} {user.username!r}: it is the last active admin; "
            "make another user admin first",
            details={"user": user.username},
        )


def set_role(
    *, session: Session, username: str, role: Role, actor: str, reason: str = ""
) -> UserRow:
    """Change a user's role; their sessions and keys act with it from their next check."""
    user = get_user(session=session, username=username)
    if user.role == role.value:
        return user
    if role is not Role.ADMIN:
        _keep_an_admin(session, user, "demote")
    before = user.role
    user.role = role.value
    write_audit(
        session=session,
        entity="user",
        entity_key=username,
        action="set_role",
        actor=actor,
        reason=reason,
        changes={"role": {"from": before, "to": role.value}},
    )
    return user


def set_active(
    *, session: Session, username: str, active: bool, actor: str, reason: str = ""
) -> UserRow:
    """Disable (``active=False``: sessions ended, API keys refused) or enable a user. An
    enabled user logs in again; their keys that were not revoked work again."""
    user = get_user(session=session, username=username)
    if user.active == active:
        return user
    if not active:
        _keep_an_admin(session, user, "disable")
    user.active = active
    ended = 0 if active else end_user_sessions(session=session, user_id=user.id)
    write_audit(
        session=session,
        entity="user",
        entity_key=username,
        action="enable" if active else "disable",
        actor=actor,
        reason=reason,
        changes={"active": {"from": not active, "to": active}},
        snapshot=None if active else {"sessions_ended": ended},
    )
    return user


def delete_user(*, session: Session, username: str, actor: str, reason: str = "") -> None:
    """Delete a user with their sessions and API keys; the audit log keeps who they were."""
    user = get_user(session=session, username=username)
    _keep_an_admin(session, user, "delete")
    keys = [row.prefix for row in list_api_keys(session=session, username=username)]
    ended = end_user_sessions(session=session, user_id=user.id)
    for row in list_api_keys(session=session, username=username):
        session.delete(row)
    session.delete(user)
    write_audit(
        session=session,
        entity="user",
        entity_key=username,
        action="delete",
        actor=actor,
        reason=reason,
        snapshot={"role": user.role, "api_keys": keys, "sessions_ended": ended},
    )
