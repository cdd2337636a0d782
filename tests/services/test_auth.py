"""Logins, sessions, first-run setup and the audit entries they write."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from db.models import AuditEntry, AuthSession, User
from recova.errors import Conflict, InvalidInput, PermissionDenied
from services import auth, users
from services.actors import Actor
from tests.factories import PASSWORD, make_user


def test_first_run_needs_admin(session):
    assert auth.needs_first_admin(session=session)
    make_user(session, "boss", role="admin")
    assert not auth.needs_first_admin(session=session)


def test_first_user_must_be_admin(session):
    data = users.NewUser(username="ann", password=PASSWORD, role="collector")
    with pytest.raises(InvalidInput):
        users.add_user(session=session, actor=None, data=data)


def test_setup_refused_once_admin_exists(session):
    make_user(session, "boss", role="admin")
    data = users.NewUser(username="intruder", password=PASSWORD, role="admin")
    with pytest.raises(Conflict):
        users.add_user(session=session, actor=None, data=data)


def test_password_stored_as_argon2(session):
    make_user(session, "boss", role="admin")
    stored = session.scalar(select(User.password_hash).where(User.username == "boss"))
    assert stored.startswith("$argon2")
    assert PASSWORD not in stored


def test_short_password_rejected(session):
    data = users.NewUser(username="boss", password="short", role="admin")
    with pytest.raises(InvalidInput) as raised:
        users.add_user(session=session, actor=None, data=data)
    assert raised.value.code == "password_too_short"


def test_login_and_resolve(session):
    make_user(session, "boss", role="admin")
    result = auth.login(session=session, username="boss", password=PASSWORD)
    actor = auth.resolve(session=session, token=result.token)
    assert actor is not None
    assert actor.username == "boss"
    assert actor.role == "admin"


def test_failed_login_audited(session):
    make_user(session, "boss", role="admin")
    with pytest.raises(PermissionDenied):
        auth.login(session=session, username="boss", password="wrong password!")
    with pytest.raises(PermissionDenied):
        auth.login(session=session, username="nobody", password="wrong password!")
    failures = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.action == "login_failed")
        .order_by(AuditEntry.id)
    ).all()
    assert [entry.detail["reason"] for entry in failures] == [
        "bad_password",
        "unknown_user",
    ]


def test_lockout_after_repeated_failures(session):
    make_user(session, "boss", role="admin")
    for _ in range(auth.MAX_FAILED_LOGINS):
        with pytest.raises(PermissionDenied):
            auth.login(session=session, username="boss", password="wrong password!")
    with pytest.raises(PermissionDenied) as raised:
        auth.login(session=session, username="boss", password=PASSWORD)
    assert raised.value.code == "login_locked"


def test_logout_ends_session(session):
    make_user(session, "boss", role="admin")
    result = auth.login(session=session, username="boss", password=PASSWORD)
    auth.logout(session=session, token=result.token)
    assert auth.resolve(session=session, token=result.token) is None


def test_session_expires_when_idle(session):
    make_user(session, "boss", role="admin")
    result = auth.login(session=session, username="boss", password=PASSWORD)
    session.execute(
        text("UPDATE auth_sessions SET last_seen_at = now() - interval '2 days'")
    )
    session.commit()
    assert auth.resolve(session=session, token=result.token) is None


def test_session_expires_at_max_age(session):
    make_user(session, "boss", role="admin")
    result = auth.login(session=session, username="boss", password=PASSWORD)
    row = session.scalars(select(AuthSession)).one()
    row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    session.commit()
    assert auth.resolve(session=session, token=result.token) is None


def test_deactivated_user_cannot_log_in(session):
    admin = make_user(session, "boss", role="admin")
    collector = make_user(session, "ann")
    token = auth.login(session=session, username="ann", password=PASSWORD).token
    user = session.get(User, collector.id)
    users.change_user(
        session=session,
        actor=admin,
        data=users.UserChange(user_id=user.id, version=user.version, is_active=False),
    )
    assert auth.resolve(session=session, token=token) is None
    with pytest.raises(PermissionDenied):
        auth.login(session=session, username="ann", password=PASSWORD)


def test_collector_cannot_add_users(session):
    collector = make_user(session, "ann")
    data = users.NewUser(username="bob", password=PASSWORD, role="collector")
    with pytest.raises(PermissionDenied):
        users.add_user(session=session, actor=collector, data=data)


def test_stale_user_edit_refused(session):
    admin = make_user(session, "boss", role="admin")
    collector = make_user(session, "ann")
    version = session.get(User, collector.id).version
    users.change_user(
        session=session,
        actor=admin,
        data=users.UserChange(user_id=collector.id, version=version, skill=2),
    )
    with pytest.raises(Conflict):
        users.change_user(
            session=session,
            actor=admin,
            data=users.UserChange(user_id=collector.id, version=version, skill=3),
        )


def test_last_admin_cannot_be_demoted(session):
    admin = make_user(session, "boss", role="admin")
    user = session.get(User, admin.id)
    with pytest.raises(InvalidInput):
        users.change_user(
            session=session,
            actor=admin,
            data=users.UserChange(
                user_id=user.id, version=user.version, role="manager"
            ),
        )


def test_user_change_audited_with_before_after(session):
    admin = make_user(session, "boss", role="admin")
    collector = make_user(session, "ann", team="North", regions=["广东"])
    version = session.get(User, collector.id).version
    users.change_user(
        session=session,
        actor=admin,
        data=users.UserChange(user_id=collector.id, version=version, capacity=50),
    )
    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "user_changed")
    ).one()
    assert entry.before["capacity"] == 500
    assert entry.after["capacity"] == 50


def test_audit_rows_cannot_change(session):
    make_user(session, "boss", role="admin")
    for statement in (
        "UPDATE audit_log SET action = 'x'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(Exception, match="append-only"):
            session.execute(text(statement))
        session.rollback()


def test_operator_actor_is_admin():
    assert Actor.operator().role == "admin"
