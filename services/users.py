"""Users, roles and teams."""

import logging
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field, StringConstraints, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from db.models import ROLES, Team, User
from recova.errors import Conflict, InvalidInput, NotFound
from services import audit, auth
from services.actors import Actor, require_role

logger = logging.getLogger(__name__)

Username = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=2,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.@-]+$",
    ),
]


class NewUser(BaseModel):
    username: Username
    password: str
    role: str
    display_name: str = ""
    team: str | None = None
    regions: list[str] = Field(default_factory=list)
    skill: int = Field(default=1, ge=1, le=3)
    capacity: int = Field(default=500, ge=0, le=1_000_000)
    language: str = "zh-CN"


class UserChange(BaseModel):
    user_id: int
    version: int
    role: str | None = None
    display_name: str | None = None
    team: str | None = None
    clear_team: bool = False
    regions: list[str] | None = None
    skill: int | None = Field(default=None, ge=1, le=3)
    capacity: int | None = Field(default=None, ge=0, le=1_000_000)
    is_active: bool | None = None


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], **values: Any) -> M:
    """Build a pydantic input, turning its validation error into InvalidInput."""
    try:
        return model(**values)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        value = first.get("input")
        empty = value is None or (isinstance(value, str) and not value.strip())
        if first["type"] == "missing" or (
            empty and first["type"] in ("string_too_short", "value_error")
        ):
            raise InvalidInput("field_required", field=field) from None
        # pydantic prefixes the text of a validator's ValueError with "Value error, ".
        reason = first["msg"].removeprefix("Value error, ")
        raise InvalidInput(
            "field_invalid",
            field=field,
            value="—" if value in (None, "") else value,
            reason=reason,
        ) from None


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput("role_unknown", role=role, allowed=", ".join(ROLES))


def _check_language(language: str) -> None:
    if language not in ("zh-CN", "en"):
        raise InvalidInput("language_unknown", language=language)


def team_by_name(session: Session, name: str | None) -> Team | None:
    """Return the team called `name`, creating it on first use."""
    if not name or not name.strip():
        return None
    name = name.strip()
    team = session.scalar(select(Team).where(Team.name == name))
    if team is None:
        team = Team(name=name)
        session.add(team)
        session.flush()
    return team


def _snapshot(user: User) -> dict[str, Any]:
    return {
        "username": user.username,
        "role": user.role,
        "team_id": user.team_id,
        "regions": list(user.regions or []),
        "skill": user.skill,
        "capacity": user.capacity,
        "is_active": user.is_active,
        "display_name": user.display_name,
    }


def add_user(*, session: Session, actor: Actor | None, data: NewUser) -> User:
    """Create a user. Only an admin may, except for the first admin at setup."""
    if actor is None:
        auth.lock_first_run(session)
        if data.role != "admin":
            raise InvalidInput("first_user_admin")
    else:
        require_role(actor, "admin")
    _check_role(data.role)
    _check_language(data.language)
    if session.scalar(select(User.id).where(User.username == data.username)):
        raise Conflict("username_taken", username=data.username)

    team = team_by_name(session, data.team)
    user = User(
        username=data.username,
        display_name=data.display_name.strip() or data.username,
        password_hash=auth.hash_password(data.password),
        role=data.role,
        team_id=team.id if team else None,
        regions=[region.strip() for region in data.regions if region.strip()],
        skill=data.skill,
        capacity=data.capacity,
        language=data.language,
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor,
        "user_added",
        "user",
        user.id,
        after=_snapshot(user),
        actor_name=None if actor else "first-run setup",
    )
    session.commit()
    logger.info("user %s added with role %s", user.id, user.role)
    return user


def list_users(*, session: Session, actor: Actor) -> list[User]:
    require_role(actor, "admin", "manager", "team_lead")
    query = select(User).order_by(User.role, User.username)
    if actor.role == "team_lead":
        query = query.where(User.team_id == actor.team_id)
    return list(session.scalars(query))


def list_teams(*, session: Session) -> list[Team]:
    return list(session.scalars(select(Team).order_by(Team.name)))


def change_user(*, session: Session, actor: Actor, data: UserChange) -> User:
    """Apply an admin's edit, refusing it if someone else saved the user first."""
    require_role(actor, "admin")
    user = session.get(User, data.user_id)
    if user is None:
        raise NotFound("user_not_found", user_id=data.user_id)
    if user.version != data.version:
        raise Conflict("user_changed", username=user.username)
    before = _snapshot(user)

    if data.role is not None:
        _check_role(data.role)
        _refuse_last_admin_loss(session, user, data.role, data.is_active)
        user.role = data.role
    if data.display_name is not None:
        user.display_name = data.display_name.strip() or user.username
    if data.clear_team:
        user.team_id = None
    elif data.team is not None:
        team = team_by_name(session, data.team)
        user.team_id = team.id if team else None
    if data.regions is not None:
        user.regions = [region.strip() for region in data.regions if region.strip()]
    if data.skill is not None:
        user.skill = data.skill
    if data.capacity is not None:
        user.capacity = data.capacity
    if data.is_active is not None:
        _refuse_last_admin_loss(session, user, user.role, data.is_active)
        user.is_active = data.is_active
        if not data.is_active:
            auth.revoke_sessions(session, user.id)

    try:
        session.flush()
    except StaleDataError:
        session.rollback()
        raise Conflict("user_changed", username=before["username"]) from None
    audit.record(
        session,
        actor,
        "user_changed",
        "user",
        user.id,
        before=before,
        after=_snapshot(user),
    )
    session.commit()
    return user


def _refuse_last_admin_loss(
    session: Session, user: User, new_role: str, active: bool | None
) -> None:
    losing = user.role == "admin" and (new_role != "admin" or active is False)
    if not losing:
        return
    admins = session.scalars(
        select(User.id).where(User.role == "admin", User.is_active, User.id != user.id)
    ).all()
    if not admins:
        raise InvalidInput("last_admin")


def reset_password(
    *, session: Session, actor: Actor, user_id: int, password: str
) -> None:
    require_role(actor, "admin")
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user_not_found", user_id=user_id)
    user.password_hash = auth.hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    auth.revoke_sessions(session, user.id)
    audit.record(session, actor, "password_reset", "user", user.id)
    session.commit()


def set_language(*, session: Session, actor: Actor, language: str) -> Actor:
    """Store the actor's own language choice and return the updated actor."""
    _check_language(language)
    if actor.id is None:
        return actor
    user = session.get(User, actor.id)
    if user is None:
        raise NotFound("user_not_found", user_id=actor.id)
    user.language = language
    session.commit()
    return Actor.from_user(user)


def find_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound("username_not_found", username=username)
    return user


def change_own_password(
    *, session: Session, actor: Actor, current: str, new: str
) -> None:
    """Change the actor's password after checking the current one."""
    if actor.id is None:
        raise NotFound("user_not_found", user_id=actor.username)
    user = session.get(User, actor.id)
    if user is None:
        raise NotFound("user_not_found", user_id=actor.id)
    if not auth.verify_password(user.password_hash, current):
        audit.record(session, actor, "password_change_failed", "user", user.id)
        session.commit()
        raise InvalidInput("password_wrong")
    user.password_hash = auth.hash_password(new)
    audit.record(session, actor, "password_changed", "user", user.id)
    session.commit()
