"""The acting user that every service call is checked against."""

from dataclasses import dataclass

from db.models import User
from recova.errors import PermissionDenied

MANAGERS = ("admin", "manager")
CASE_READERS = ("admin", "manager", "team_lead", "collector", "auditor", "finance")


@dataclass(frozen=True)
class Actor:
    id: int | None
    username: str
    role: str
    team_id: int | None = None
    language: str = "zh-CN"
    timezone: str = "Asia/Shanghai"

    @classmethod
    def from_user(cls, user: User) -> "Actor":
        return cls(
            id=user.id,
            username=user.username,
            role=user.role,
            team_id=user.team_id,
            language=user.language,
            timezone=user.timezone,
        )

    @classmethod
    def operator(cls, name: str = "cli") -> "Actor":
        """Return the actor of an operator at the command line, with admin rights."""
        return cls(id=None, username=name, role="admin")

    @property
    def sees_masked_pii(self) -> bool:
        return self.role == "collector"


def require_role(actor: Actor, *roles: str) -> None:
    """Raise PermissionDenied unless the actor has one of `roles`."""
    if actor.role not in roles:
        raise PermissionDenied(
            "role_required", role=actor.role, allowed=", ".join(roles)
        )
