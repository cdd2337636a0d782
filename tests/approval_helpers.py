"""Test data for payments and approvals: fixture imports, approvers and assignment.

Cases are put on a collector and team with plain SQL, because automatic assignment
is not what these tests are about.
"""

import threading
import time
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from db.models import User
from services import auth, intake, payments
from services.actors import Actor
from services.users import team_by_name
from tests.conftest import FIXTURES
from tests.factories import PASSWORD

CREDITOR = "Test Bank"
TEAM = "Team East"


@dataclass(frozen=True)
class Staff:
    collector: Actor
    team_lead: Actor
    manager: Actor
    other_manager: Actor
    admin: Actor
    other_admin: Actor
    finance: Actor
    auditor: Actor


def import_cases(
    session: Session, name: str = "cases_zh_gbk.csv", *, creditor: str = CREDITOR
) -> intake.ImportReport:
    return intake.import_cases(
        session=session,
        actor=Actor.operator(),
        request=intake.ImportRequest(creditor=creditor),
        content=(FIXTURES / name).read_bytes(),
        filename=name,
    )


def import_payments(
    session: Session,
    content: bytes,
    *,
    name: str = "payments.csv",
    creditor: str = CREDITOR,
    actor: Actor | None = None,
):
    return payments.import_payments(
        session=session,
        actor=actor or payments.finance_operator(),
        request=payments.PaymentImportRequest(creditor=creditor),
        content=content,
        filename=name,
    )


def import_fixture_payments(session: Session, **options):
    content = (FIXTURES / "payments_zh.csv").read_bytes()
    return import_payments(session, content, name="payments_zh.csv", **options)


@lru_cache(maxsize=1)
def _password_hash() -> str:
    return auth.hash_password(PASSWORD)


def add_user(session: Session, username: str, role: str, team: str | None = None):
    """Insert a user whose password is `PASSWORD` and return its actor.

    One argon2 hash serves every user, so a test with eight users does not spend
    seconds hashing; `tests.factories.make_user` goes through the service instead.
    """
    team_row = team_by_name(session, team)
    user = User(
        username=username,
        display_name=username,
        password_hash=_password_hash(),
        role=role,
        team_id=team_row.id if team_row else None,
    )
    session.add(user)
    session.commit()
    return Actor.from_user(user)


def make_staff(session: Session) -> Staff:
    return Staff(
        collector=add_user(session, "cole", "collector", TEAM),
        team_lead=add_user(session, "lee", "team_lead", TEAM),
        manager=add_user(session, "mona", "manager"),
        other_manager=add_user(session, "max", "manager"),
        admin=add_user(session, "ada", "admin"),
        other_admin=add_user(session, "abe", "admin"),
        finance=add_user(session, "fay", "finance"),
        auditor=add_user(session, "aud", "auditor"),
    )


def assign(
    session: Session, case_no: str, collector: Actor, creditor: str = CREDITOR
) -> int:
    """Put a case on `collector` and their team; return the case id."""
    case_id = session.execute(
        text(
            "UPDATE cases c SET collector_id = :collector, team_id = :team,"
            " status = 'assigned' FROM creditors cr "
            "WHERE cr.id = c.creditor_id AND cr.name = :creditor"
            " AND c.case_no = :case_no RETURNING c.id"
        ),
        {
            "collector": collector.id,
            "team": collector.team_id,
            "creditor": creditor,
            "case_no": case_no,
        },
    ).scalar_one()
    session.commit()
    return case_id


def case_row(session: Session, case_no: str, creditor: str = CREDITOR):
    session.expire_all()
    return session.execute(
        text(
            "SELECT c.id, c.balance, c.status, c.version, coalesce(o.amount, 0)"
            " AS overpaid FROM cases c JOIN creditors cr ON cr.id = c.creditor_id"
            " LEFT JOIN overpayments o ON o.case_id = c.id "
            "WHERE cr.name = :creditor AND c.case_no = :case_no"
        ),
        {"creditor": creditor, "case_no": case_no},
    ).one()


# How long the held commit waits for the other transaction to block on a lock.
OVERLAP_TIMEOUT_S = 15


class OverlapGate:
    """Holds the first commit among several sessions until another connection of
    this database waits on a lock, so two transactions really overlap instead of
    running in turn.

    After the timeout the commit goes ahead anyway, and the test then checks the
    same outcome for transactions that ran one after the other.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._first = threading.Lock()

    def watch(self, session: Session) -> None:
        original = session.commit

        def commit() -> None:
            if self._first.acquire(blocking=False):
                self._wait_for_blocked_peer()
            original()

        session.commit = commit

    def _wait_for_blocked_peer(self) -> None:
        deadline = time.monotonic() + OVERLAP_TIMEOUT_S
        with self.engine.connect() as probe:
            while time.monotonic() < deadline:
                waiting = probe.scalar(
                    text(
                        "SELECT count(*) FROM pg_locks l"
                        " JOIN pg_stat_activity a ON a.pid = l.pid "
                        "WHERE NOT l.granted AND a.datname = current_database()"
                    )
                )
                if waiting:
                    return
                time.sleep(0.02)
