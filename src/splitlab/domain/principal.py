"""Who is acting: a user (by cookie or API key) or the local admin when auth is off."""

from __future__ import annotations

from dataclasses import dataclass

from splitlab.domain.enums import Role, Scope


@dataclass(frozen=True)
class Principal:
    username: str
    role: Role
    scope: Scope | None = None
    """Set when the request came with an API key; ``None`` for a dashboard session."""

    def can_read(self) -> bool:
        return self.scope in (None, Scope.READ, Scope.ADMIN)

    def can_ingest(self) -> bool:
        return self.scope in (None, Scope.INGEST, Scope.ADMIN) and self.role.at_least(Role.EDITOR)

    def can_edit(self) -> bool:
        return self.scope in (None, Scope.ADMIN) and self.role.at_least(Role.EDITOR)

    def can_review(self) -> bool:
        return self.scope in (None, Scope.ADMIN) and self.role.at_least(Role.REVIEWER)

    def is_admin(self) -> bool:
        return self.scope in (None, Scope.ADMIN) and self.role is Role.ADMIN


LOCAL_ADMIN = Principal(username="local", role=Role.ADMIN)
"""Every request's principal when SPLITLAB_AUTH=off (allowed on loopback only)."""
