"""Passwords, logins and server-side sessions."""

import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from db.models import AuthSession, User
from recova.errors import Conflict, InvalidInput, PermissionDenied
from recova.settings import get_settings
from services import audit
from services.actors import Actor

logger = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 10
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)

_hasher = PasswordHasher()
# Verified against when the user name is unknown, so both paths take the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    check_password_strength(password)
    return _hasher.hash(password)


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput("password_too_short", minimum=MIN_PASSWORD_LENGTH)
    if password.strip() != password:
        raise InvalidInput("password_spaces")


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=1)
def session_secret() -> bytes:
    """Return RECOVA_SECRET, or a random secret kept in RECOVA_HOME for this install."""
    configured = get_settings().secret
    if configured:
        return configured.encode()
    home = get_settings().home.expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    path = Path(home, "secret")
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _token_hash(token: str) -> str:
    return hmac.new(session_secret(), token.encode(), hashlib.sha256).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def needs_first_admin(*, session: Session) -> bool:
    """Tell whether the install has no active admin yet (first-run setup)."""
    count = session.scalar(
        select(func.count()).where(User.role == "admin", User.is_active)
    )
    return count == 0


def lock_first_run(session: Session) -> None:
    """Serialise first-run setup, so two browsers cannot both create the first admin."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('recova.first_admin'))")
    )
    if not needs_first_admin(session=session):
        raise Conflict("setup_done")


@dataclass(frozen=True)
class LoginResult:
    token: str
    actor: Actor


def login(*, session: Session, username: str, password: str) -> LoginResult:
    """Check the password and open a session; every failure is audited."""
    username = username.strip()
    user = session.scalar(
        select(User).where(User.username == username).with_for_update(of=User)
    )
    now = _now()
    if user is None:
        verify_password(_DUMMY_HASH, password)
        _fail(session, None, username, "unknown_user")
        raise PermissionDenied("login_failed")
    if user.locked_until and user.locked_until > now:
        _fail(session, user, username, "locked")
        raise PermissionDenied("login_locked", until=user.locked_until)
    if not verify_password(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
        _fail(session, user, username, "bad_password")
        raise PermissionDenied("login_failed")
    if not user.is_active:
        _fail(session, user, username, "inactive")
        raise PermissionDenied("login_failed")

    token = secrets.token_urlsafe(32)
    settings = get_settings()
    session.add(
        AuthSession(
            token_hash=_token_hash(token),
            user_id=user.id,
            expires_at=now + timedelta(hours=settings.session_max_hours),
        )
    )
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    actor = Actor.from_user(user)
    audit.record(session, actor, "login", "user", user.id)
    session.commit()
    logger.info("user %s logged in", user.id)
    return LoginResult(token=token, actor=actor)


def _fail(session: Session, user: User | None, username: str, reason: str) -> None:
    audit.record(
        session,
        None,
        "login_failed",
        "user",
        user.id if user else None,
        detail={"username": username[:64], "reason": reason},
        actor_name=username[:64],
    )
    session.commit()
    logger.info("login failed for user id %s: %s", user.id if user else None, reason)


def resolve(*, session: Session, token: str | None) -> Actor | None:
    """Return the actor of a live session, extending its idle timer, or None."""
    if not token:
        return None
    row = session.get(AuthSession, _token_hash(token))
    now = _now()
    idle = timedelta(minutes=get_settings().session_idle_minutes)
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    if row.last_seen_at + idle <= now:
        row.revoked_at = now
        session.commit()
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        return None
    row.last_seen_at = now
    session.commit()
    return Actor.from_user(user)


def logout(*, session: Session, token: str | None) -> None:
    if not token:
        return
    row = session.get(AuthSession, _token_hash(token))
    if row is not None and row.revoked_at is None:
        row.revoked_at = _now()
        audit.record(session, None, "logout", "user", row.user_id)
        session.commit()


def revoke_sessions(session: Session, user_id: int) -> None:
    """End every open session of a user, for example after deactivation."""
    session.execute(
        AuthSession.__table__.update()
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=_now())
    )
