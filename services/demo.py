"""A made-up collection company, built through the services, for trying Recova.

`build_demo` creates users and teams (services.users), imports one placement file a
month (services.intake), assigns the cases (services.assignment), then plays the
months day by day: contact attempts and promises through services.contacts, payments
through services.payments, and a snapshot each evening. It ends with a few write-offs
approved through services.approvals, the promise evaluation and today's daily job.
Every person, phone and ID number is generated.

The services stamp some rows with the current time, so the demo moves them to the
day it is playing with direct updates, and does nothing else behind the services:

- assignment: `cases.assigned_at`, `first_contact_due_at` and the `assigned` case
  event go to the placement day;
- promises: a promise must be due today or later when made, so it is made due
  tomorrow and then given its played due date and creation time.

The same seed on an empty database gives the same company, except that dates are
counted back from today.
"""

import csv
import io
import logging
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.orm import Session

from recova.errors import InvalidInput, RecovaError
from recova.i18n import translate
from recova.settings import get_settings
from services import snapshots
from services.actors import Actor
from services.segments import local_today

logger = logging.getLogger(__name__)

DEMO_PASSWORD = "demo-pass-2026"
CENT = Decimal("0.01")
TEAMS = ("华东组", "华南组", "华北组")
COLLECTORS = 20
CREDITORS = ("示范银行", "示范消费金融")
PRODUCTS = ("信用卡", "消费贷", "现金贷", "车贷")
# Province, city, ID area code, weight.
PLACES = (
    ("广东", "广州", "440106", 18),
    ("浙江", "杭州", "330106", 12),
    ("江苏", "南京", "320102", 12),
    ("上海", "上海", "310101", 9),
    ("北京", "北京", "110105", 9),
    ("山东", "济南", "370102", 10),
    ("河南", "郑州", "410102", 10),
    ("四川", "成都", "510104", 9),
    ("湖北", "武汉", "420106", 6),
    ("福建", "福州", "350102", 5),
)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董袁潘"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建文辉鹏飞宇晨欣怡"
COLLECTOR_NAMES = (
    ("chen.jing", "陈静"), ("li.wei", "李伟"), ("zhang.min", "张敏"),
    ("wang.fang", "王芳"), ("liu.yang", "刘洋"), ("zhao.lei", "赵磊"),
    ("sun.li", "孙丽"), ("zhou.jie", "周杰"), ("wu.tao", "吴涛"),
    ("xu.yan", "徐艳"), ("hu.qiang", "胡强"), ("zhu.hua", "朱华"),
    ("gao.ping", "高平"), ("lin.xin", "林欣"), ("he.chao", "何超"),
    ("guo.ying", "郭英"), ("ma.jun", "马军"), ("luo.hui", "罗辉"),
    ("liang.yu", "梁宇"), ("song.lan", "宋兰"),
)  # fmt: skip
LEADS = (
    ("lead.east", "东区组长"),
    ("lead.south", "南区组长"),
    ("lead.north", "北区组长"),
)
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"

Progress = Callable[[str], None]


class DemoRequest(BaseModel):
    cases: int = Field(default=2000, ge=20, le=200_000)
    months: int = Field(default=6, ge=1, le=24)
    seed: int = 7


@dataclass
class DemoSummary:
    cases: int = 0
    attempts: int = 0
    payments: int = 0
    promises: int = 0
    write_offs: int = 0
    rejected: int = 0
    users: list[str] = field(default_factory=list)

    def describe(self, language: str = "en") -> str:
        done = translate(
            "demo.done",
            language,
            cases=self.cases,
            attempts=self.attempts,
            payments=self.payments,
            promises=self.promises,
            write_offs=self.write_offs,
        )
        login = translate(
            "demo.login",
            language,
            users=", ".join(self.users),
            password=DEMO_PASSWORD,
        )
        return f"{done}\n{login}"


@dataclass
class CaseState:
    """State of one case that the demo tracks while it plays the days."""

    id: int
    case_no: str
    creditor: str
    placed: date
    balance: Decimal
    collector: Actor
    willingness: float
    next_attempt: date
    open: bool = True
    attempts: int = 0
    promise_until: date | None = None


@dataclass
class Company:
    admin: Actor
    finance: Actor
    leads: dict[int, Actor]
    collectors: dict[int, Actor]
    users: list[str]


def build_demo(
    *, session: Session, request: DemoRequest, progress: Progress | None = None
) -> DemoSummary:
    """Build the demo company in an empty database and return what it made."""
    say = progress or (lambda message: None)
    existing = session.scalar(text("SELECT count(*) FROM cases"))
    if existing:
        raise InvalidInput("demo_not_empty", cases=existing)
    rng = random.Random(request.seed)
    today = local_today()
    first_day = _months_back(today, request.months)
    summary = DemoSummary()

    say("users and teams")
    company = _create_users(session)
    summary.users = company.users
    say("placement files")
    placements = _import_batches(session, company.admin, rng, request, first_day)
    say("assignment")
    cases = _assign(session, company, placements, rng)
    summary.cases = len(cases)
    _play_days(session, company, cases, rng, first_day, today, summary, say)
    say("write-offs")
    summary.write_offs = _write_offs(session, company, cases, rng)

    from services.promises import evaluate_promises

    evaluate_promises(session=session, as_of=today)
    say("snapshot and KPI sums")
    snapshots.daily_job(session, today)
    return summary


def _months_back(today: date, months: int) -> date:
    month = today.month - months
    year = today.year + (month - 1) // 12
    return date(year, (month - 1) % 12 + 1, 1)


# Users


def _create_users(session: Session) -> Company:
    from services.auth import needs_first_admin
    from services.users import NewUser, add_user

    def add(actor: Actor | None, username: str, role: str, **fields) -> Actor:
        user = add_user(
            session=session,
            actor=actor,
            data=NewUser(
                username=username, password=DEMO_PASSWORD, role=role, **fields
            ),
        )
        return Actor.from_user(user)

    admin = Actor.operator("demo")
    users = []
    if needs_first_admin(session=session):
        add(None, "demo.admin", "admin", display_name="演示管理员")
        users.append("demo.admin")
    add(admin, "demo.manager", "manager", display_name="演示主管")
    finance = add(admin, "demo.finance", "finance", display_name="演示财务")
    add(admin, "demo.auditor", "auditor", display_name="演示审计")
    users += ["demo.manager", "demo.finance", "demo.auditor"]
    leads = {}
    for team, (username, name) in zip(TEAMS, LEADS, strict=True):
        lead = add(admin, username, "team_lead", display_name=name, team=team)
        leads[lead.team_id] = lead
        users.append(username)
    collectors = {}
    for index, (username, name) in enumerate(COLLECTOR_NAMES[:COLLECTORS]):
        collector = add(
            admin,
            username,
            "collector",
            display_name=name,
            team=TEAMS[index % len(TEAMS)],
            skill=3 - index % 3,
            capacity=1000,
        )
        collectors[collector.id] = collector
    users.append(f"{COLLECTOR_NAMES[0][0]} … {COLLECTOR_NAMES[COLLECTORS - 1][0]}")
    return Company(admin, finance, leads, collectors, users)


# Placement files


def _id_number(rng: random.Random, area: str) -> str:
    born = date(1965, 1, 1) + timedelta(days=rng.randrange(365 * 38))
    body = f"{area}{born:%Y%m%d}{rng.randrange(1000):03d}"
    total = sum(
        int(digit) * weight for digit, weight in zip(body, ID_WEIGHTS, strict=True)
    )
    return body + ID_CHECK[total % 11]


def _placement_file(
    rng: random.Random, batch_no: int, count: int, placed: date
) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        ["案件编号", "客户姓名", "身份证号", "手机号", "省份", "城市", "产品类型"]
        + ["欠款总额", "逾期天数", "客户类型", "委案日期"]
    )
    weights = [place[3] for place in PLACES]
    for row in range(count):
        province, city, area, _ = rng.choices(PLACES, weights)[0]
        band = rng.random()
        if band < 0.55:
            amount = rng.uniform(800, 5000)
        elif band < 0.9:
            amount = rng.uniform(5000, 50000)
        else:
            amount = rng.uniform(50000, 160000)
        name = rng.choice(SURNAMES) + "".join(
            rng.choice(GIVEN) for _ in range(rng.choice((1, 2)))
        )
        phone = f"1{rng.choice('3589')}{rng.randrange(10**9):09d}"
        writer.writerow(
            [
                f"DEMO{batch_no:02d}{row + 1:05d}",
                name,
                _id_number(rng, area),
                phone,
                province,
                city,
                rng.choice(PRODUCTS),
                f"{amount:.2f}",
                rng.choice((5, 12, 20, 28, 35, 45, 62, 75, 95, 130, 190)),
                "企业" if rng.random() < 0.02 else "个人",
                placed.isoformat(),
            ]
        )
    return buffer.getvalue().encode("utf-8")


def _import_batches(
    session: Session,
    admin: Actor,
    rng: random.Random,
    request: DemoRequest,
    first_day: date,
) -> list[tuple[int, date]]:
    from services.intake import ImportRequest, import_cases

    placements = []
    per_batch = request.cases // request.months
    for index in range(request.months):
        # Placed on the 1st, so its early cases are in M1 when the month starts.
        placed = _months_back(first_day, -index)
        count = per_batch + (request.cases % request.months if index == 0 else 0)
        creditor = CREDITORS[index % len(CREDITORS)]
        content = _placement_file(rng, index + 1, count, placed)
        report = import_cases(
            session=session,
            actor=admin,
            request=ImportRequest(
                creditor=creditor,
                batch_name=f"{creditor} {placed:%Y-%m}",
                placement_date=placed,
            ),
            content=content,
            filename=f"demo-{placed:%Y-%m}.csv",
        )
        placements.append((report.batch_id, placed))
    session.execute(
        text(
            "UPDATE batches SET commission_rate = 0.1800 WHERE commission_rate IS NULL"
        )
    )
    session.commit()
    return placements


def _assign(
    session: Session,
    company: Company,
    placements: list[tuple[int, date]],
    rng: random.Random,
) -> list[CaseState]:
    from services.assignment import auto_assign

    manager = Actor(id=None, username="demo", role="manager")
    auto_assign(session=session, actor=manager)
    zone = ZoneInfo(get_settings().timezone)
    for batch_id, placed in placements:
        # Direct update: assignment happened on the placement day.
        assigned_at = datetime.combine(placed, time(9, 30), zone)
        session.execute(
            text(
                "UPDATE cases SET assigned_at = :at, first_contact_due_at = :at + "
                "CASE WHEN segment IN ('heavy', 'special') THEN interval '4 hours' "
                "ELSE interval '24 hours' END WHERE batch_id = :batch "
                "AND assigned_at IS NOT NULL"
            ),
            {"at": assigned_at, "batch": batch_id},
        )
        session.execute(
            text(
                "UPDATE case_events e SET at = :at FROM cases c WHERE c.id = e.case_id "
                "AND c.batch_id = :batch AND e.kind = 'assigned'"
            ),
            {"at": assigned_at, "batch": batch_id},
        )
    session.commit()

    rows = session.execute(
        text(
            "SELECT c.id, c.case_no, cr.name, c.placement_date, c.balance, "
            "c.collector_id FROM cases c JOIN creditors cr ON cr.id = c.creditor_id "
            "WHERE c.collector_id IS NOT NULL ORDER BY c.id"
        )
    ).all()
    return [
        CaseState(
            id=row[0],
            case_no=row[1],
            creditor=row[2],
            placed=row[3],
            balance=row[4],
            collector=company.collectors[row[5]],
            willingness=rng.random() ** 1.6,
            next_attempt=row[3] + timedelta(days=rng.choice((0, 0, 0, 0, 1))),
        )
        for row in rows
    ]


# Playing the days


def _play_days(
    session: Session,
    company: Company,
    cases: list[CaseState],
    rng: random.Random,
    first_day: date,
    today: date,
    summary: DemoSummary,
    say: Progress,
) -> None:
    payments_due: dict[date, list[tuple[CaseState, Decimal]]] = defaultdict(list)
    day = first_day
    while day < today:
        if day.day == 1:
            say(f"{day:%Y-%m}")
        for case in cases:
            if case.open and case.placed <= day and case.next_attempt <= day:
                _attempt(session, case, day, rng, payments_due, summary)
        _spontaneous_payments(cases, day, rng, payments_due)
        for case, amount in payments_due.pop(day, []):
            _pay(session, company.finance, case, amount, day, summary)
        snapshots.take_snapshot(session=session, day=day)
        day += timedelta(days=1)


RESULTS_RPC = ("refused", "hardship", "callback", "claims_paid")
RESULTS_OTHER = ("third_party", "wrong_party")
RESULTS_MISSED = ("no_answer", "no_answer", "busy", "voicemail", "invalid_number")


def _attempt(session, case, day, rng, payments_due, summary) -> None:
    from services.contacts import AttemptInput, record_attempt

    zone = ZoneInfo(get_settings().timezone)
    # Most first calls come within the morning of the assignment day.
    first = case.attempts == 0
    minutes = rng.randrange(45, 240) if first else rng.randrange(660)
    at = datetime.combine(day, time(9), zone) + timedelta(minutes=minutes)
    channel = "sms" if rng.random() < 0.2 else "phone"
    promise = None
    if channel == "sms":
        code = "sent"
    elif rng.random() < 0.3 + 0.4 * case.willingness:
        if rng.random() < 0.75:
            wants = case.promise_until is None or case.promise_until < day
            if wants and rng.random() < 0.2 + 0.5 * case.willingness:
                code = "promise"
                promise = _promise_terms(case, day, rng)
            else:
                code = rng.choice(RESULTS_RPC)
        else:
            code = rng.choice(RESULTS_OTHER)
    else:
        code = rng.choice(RESULTS_MISSED)
    connected = code not in RESULTS_MISSED and code != "sent"
    data = AttemptInput(
        case_id=case.id,
        channel=channel,
        result_code=code,
        at=at.astimezone(UTC),
        recording_ref=f"REC-{case.id}-{day:%Y%m%d}" if connected else None,
        promise_amount=promise[0] if promise else None,
        promise_due_on=local_today() + timedelta(days=1) if promise else None,
    )
    case.next_attempt = day + timedelta(days=rng.randrange(6, 30))
    try:
        result = record_attempt(session=session, actor=case.collector, data=data)
    except RecovaError as error:
        session.rollback()
        summary.rejected += 1
        logger.info("demo attempt on case %s rejected: %s", case.id, error.code)
        return
    summary.attempts += 1
    case.attempts += 1
    if promise and result.promise_id:
        _date_promise(session, result.promise_id, at, promise[1])
        summary.promises += 1
        case.promise_until = promise[1] + timedelta(days=2)
        _plan_payment(case, promise, rng, payments_due)


def _promise_terms(case, day, rng) -> tuple[Decimal, date]:
    # Small debts are mostly promised in full, so some cases are cured each month.
    shares = (0.5, 1.0, 1.0) if case.balance < 5000 else (0.1, 0.2, 0.3, 0.5, 1.0)
    share = Decimal(str(rng.choice(shares)))
    amount = max((case.balance * share).quantize(CENT), Decimal("100.00"))
    return min(amount, case.balance), day + timedelta(days=rng.randrange(3, 11))


def _date_promise(session, promise_id: int, at: datetime, due_on: date) -> None:
    # Direct update: the promise was made at `at` and is due on the played day.
    params = {"at": at, "due": due_on, "id": promise_id}
    session.execute(
        text("UPDATE promises SET created_at = :at, due_on = :due WHERE id = :id"),
        params,
    )
    session.execute(
        text(
            "UPDATE cases c SET promise_due_on = :due FROM promises p "
            "WHERE p.id = :id AND c.id = p.case_id"
        ),
        params,
    )
    session.commit()


def _plan_payment(case, promise, rng, payments_due) -> None:
    amount, due_on = promise
    roll = rng.random()
    if roll < 0.25 + 0.6 * case.willingness:
        paid_on = due_on - timedelta(days=rng.randrange(3))
        payments_due[paid_on].append((case, amount))
    elif roll < 0.85:
        part = (amount * Decimal("0.4")).quantize(CENT)
        payments_due[due_on].append((case, part))


def _spontaneous_payments(cases, day, rng, payments_due) -> None:
    for case in cases:
        if not case.open or case.placed > day or case.promise_until:
            continue
        if rng.random() < 0.002 * case.willingness:
            share = Decimal(str(rng.choice((0.1, 0.25, 1.0))))
            payments_due[day].append((case, (case.balance * share).quantize(CENT)))


def _pay(session, finance, case, amount, day, summary) -> None:
    from services.payments import ManualPayment, post_payment

    if not case.open or amount <= 0:
        return
    amount = min(amount, case.balance)
    summary.payments += 1
    data = ManualPayment(
        creditor=case.creditor,
        case_no=case.case_no,
        transaction_id=f"DEMO-{case.id}-{summary.payments}",
        amount=amount,
        paid_on=day,
        channel="银行转账",
        evidence="演示数据：银行流水",
    )
    try:
        post_payment(session=session, actor=finance, data=data)
    except RecovaError as error:
        session.rollback()
        summary.payments -= 1
        logger.info("demo payment on case %s rejected: %s", case.id, error.code)
        return
    case.balance -= amount
    if case.balance <= 0:
        case.open = False


def _write_offs(session, company, cases, rng) -> int:
    from services.approvals import Decision, NewRequest, approve, request_approval

    candidates = [
        case
        for case in cases
        if case.open and case.willingness < 0.05 and case.balance <= Decimal(10000)
    ]
    chosen = rng.sample(candidates, min(len(candidates), max(3, len(cases) // 150)))
    done = 0
    for case in sorted(chosen, key=lambda item: item.id):
        lead = company.leads.get(case.collector.team_id)
        try:
            request = request_approval(
                session=session,
                actor=case.collector,
                data=NewRequest(
                    case_id=case.id,
                    kind="write_off",
                    reason="债务人长期失联且无还款能力（演示数据）",
                ),
            )
            approve(
                session=session,
                actor=lead,
                decision=Decision(request_id=request.id, step=1),
            )
        except RecovaError as error:
            session.rollback()
            logger.info("demo write-off of case %s failed: %s", case.id, error.code)
            continue
        case.open = False
        done += 1
    return done
