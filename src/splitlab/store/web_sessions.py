"""Dashboard sessions kept in the app store: a login is a row, a logout deletes it.

The cookie carries a random token; only its SHA-256 is stored. Every check reads the
user's current role and active flag, so a role change or a disabled user takes effect on
the session's next check; an idle or expired session is deleted when it is next seen.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from splitlab.domain import Principal, Role
from splitlab.errors import NotFoundError
from splitlab.store.tables import UserRow, WebSessionRow

TOUCH_EVERY = timedelta(seconds=60)
"""``last_seen_at`` is written at most this often per session (not on every request)."""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def create_web_session(*, session: Session, username: str, lifetime: timedelta) -> str:
    """Start a session for an active user; returns the token for the cookie (never stored).
    Expired sessions of every user are purged on the way."""
    now = datetime.now(UTC)
    session.execute(delete(WebSessionRow).where(WebSessionRow.expires_at < now))
    user_id = session.scalar(
        select(UserRow.id).where(UserRow.username == username, UserRow.active.is_(True))
    )
    if user_id is None:
        raise NotFoundError(f"no active user {username!r}")
    token = secrets.token_urlsafe(32)
    session.add(
        WebSessionRow(
            token_hash=token_digest(token),
            user_id=user_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + lifetime,
        )
    )
    session.flush()
    return token


def check_web_session(
    *, session: Session, token: str, idle: timedelta, now: datetime | None = None
) -> Principal | None:
    """The session's user with their current role, or None when the session is unknown,
    idle for longer than ``idle``, expired, or its user disabled (the row is then deleted)."""
    now = now or datetime.now(UTC)
    found = session.execute(
        select(WebSessionRow, UserRow)
        .join(UserRow, UserRow.id == WebSessionRow.user_id)
        .where(WebSessionRow.token_hash == token_digest(token))
    ).one_or_none()
    if found is None:
        return None
    row, user = found
    last_seen = _aware(row.last_seen_at)
    if not user.active or now - last_seen > idle or now >= _aware(row.expires_at):
        session.delete(row)
        return None
    if now - last_seen >= min(TOUCH_EVERY, idle / 10):
        row.last_seen_at = now
    return Principal(username=user.username, role=Role(user.role))


def delete_web_session(*, session: Session, token: str) -> None:
    session.execute(delete(WebSessionRow).where(WebSessionRow.token_hash == token_digest(token)))


def end_user_sessions(*, session: Session, user_id: int) -> int:
    """Delete every session of one user; returns how many there were."""
    result = session.execute(delete(WebSessionRow).where(WebSessionRow.user_id == user_id))
    return int(getattr(result, "rowcount", 0) or 0)
