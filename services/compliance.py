"""Compliance guard (合规): the contact rules of a creditor's profile, applied to a
planned contact attempt, and the admin functions for profiles and result codes.

`check_contact` returns a `ComplianceVerdict`: allowed or not, the rule that
decided, a message id with its values, and when contact is allowed again. The rules
are a contact window in the debtor's local time (the end
itself is outside), daily caps per debtor and per phone number (`cn`), a 7-in-7 cap
and a quiet week after a conversation (`us-regf`), blocking statuses and flags, an
opt-out on electronic messages, and notes free of threats and insults. Counts run
over every collector's attempts. Warnings (a missing recording, a third party who
must not learn of the debt) do not refuse the attempt.

Built-in profiles are read-only; an admin copies one to a new code and may only
tighten it.
"""

import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from db.models import OPEN_STATUSES, Case, Creditor
from db.models_followup import BLOCKING_FLAGS, ComplianceProfile, ResultCode
from recova.errors import Conflict, InvalidInput, NotFound
from services import audit
from services.actors import Actor, require_role
from services.masking import mask_phone

logger = logging.getLogger(__name__)

ADMIN_ROLES = ("admin",)
READER_ROLES = ("admin", "manager", "team_lead", "auditor")
DEFAULT_PROFILE = "cn"
DEFAULT_TIMEZONES = {"cn": "Asia/Shanghai", "us-regf": "America/New_York"}
ELECTRONIC_CHANNELS = ("sms", "email", "wechat")
# A letter is posted, not delivered at a time of day, so the window does not apply.
TIMED_CHANNELS = ("phone", "sms", "wechat", "email", "visit")
RECORDED_CHANNELS = ("phone", "visit")
BLOCKED_STATUSES = ("paused", "disputed")
CODE_PATTERN = r"^[a-z0-9][a-z0-9_-]{1,31}$"

# Threats and insults a note may not contain. Chinese entries match anywhere; English
# ones as whole words. `滚` alone is an insult, but not in 滚动 (rolling).
ABUSIVE_ZH = (
    "威胁",
    "弄死",
    "杀",
    "曝光你",
    "通讯录",
    "坐牢",
    "骗子",
    "去死",
    "老赖",
    "废物",
    "畜生",
    "王八蛋",
    "打断你",
    "让你好看",
    "不得好死",
    "伤害你",
    "打你",
    "揍你",
    "砍你",
    "废了你",
    "弄残",
    "找上门",
    "上门闹",
    "找你家人",
    "告诉你家人",
    "告诉你单位",
    "小心点",
)
ABUSIVE_EN = (
    "kill",
    "jail",
    "prison",
    "idiot",
    "stupid",
    "moron",
    "scum",
    "loser",
    "go to hell",
    "shut up",
    "we will tell your family",
    "tell your employer",
    "ruin your life",
    "you will regret",
    "or else",
    "we know where you live",
    "you'll be sorry",
    "you will be sorry",
)
# English threats whose words vary: a harm to the debtor or their people, a visit
# meant to intimidate, or disclosure of the debt to people around them.
THREAT_PATTERNS_EN = (
    r"\b(will|would|'ll|gonna|going to|could|can)\s+(\w+\s+)?(hurt|harm)\b",
    r"\byou('ll| will| could| can| are going to)\s+(be\s+)?"
    r"(arrested|jailed|locked up)\b",
    r"\b(beat|break|burn|smash|hit)\s+(you|your|him|her|them)\b",
    r"\b(find|come after|come for)\s+you\b",
    r"\bcome\s+to\s+your\s+(house|home|work|office|school)\b",
    r"\btell\s+(your|his|her|their)\s+(family|friends|neighbou?rs|boss|"
    r"colleagues|co-?workers|wife|husband|parents|children|kids)\b",
)
ABUSIVE_PATTERN = re.compile(
    "|".join(
        [re.escape(word) for word in ABUSIVE_ZH]
        + ["滚(?![动筒])"]
        + [r"\b" + re.escape(word) + r"\b" for word in ABUSIVE_EN]
        + list(THREAT_PATTERNS_EN)
    ),
    re.IGNORECASE,
)


# Profiles.


class ProfileRules(BaseModel):
    """The rules of a compliance profile, as kept in `compliance_profiles.rules`."""

    timezone: str = "Asia/Shanghai"
    window_start: str = Field(default="08:00", pattern=r"^\d{2}:\d{2}$")
    window_end: str = Field(default="22:00", pattern=r"^\d{2}:\d{2}$")
    max_connected_calls_per_day: int | None = Field(default=None, ge=0, le=100)
    max_unanswered_per_number_per_day: int | None = Field(default=None, ge=0, le=100)
    max_calls_per_7_days: int | None = Field(default=None, ge=0, le=100)
    quiet_days_after_conversation: int | None = Field(default=None, ge=0, le=60)
    recording_required: bool = False
    opt_out_required: bool = False
    record_retention_years: int | None = Field(default=None, ge=0, le=50)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("window_start", "window_end")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        time.fromisoformat(value)
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def start(self) -> time:
        return time.fromisoformat(self.window_start)

    @property
    def end(self) -> time:
        return time.fromisoformat(self.window_end)


@dataclass(frozen=True)
class Profile:
    code: str
    name: str
    based_on: str | None
    builtin: bool
    rules: ProfileRules
    version: int
    updated_at: datetime | None = None
    creditors: tuple[str, ...] = ()


class ProfileInput(BaseModel):
    code: str = Field(pattern=CODE_PATTERN)
    name: str = Field(min_length=1, max_length=100)
    based_on: str
    rules: dict[str, Any]
    # None creates the profile; a number edits the copy that has that version.
    expected_version: int | None = None


class ResultCodeInput(BaseModel):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]{1,31}$")
    label_en: str = Field(min_length=1, max_length=100)
    label_zh: str = Field(min_length=1, max_length=100)
    connected: bool
    right_party: bool
    sets_flag: str | None = None


@dataclass(frozen=True)
class ResultCodeView:
    code: str
    label_en: str
    label_zh: str
    connected: bool
    right_party: bool
    sets_flag: str | None
    builtin: bool
    active: bool

    def label(self, language: str) -> str:
        return self.label_zh if language.startswith("zh") else self.label_en


def _profile_of(row: ComplianceProfile, creditors: tuple[str, ...] = ()) -> Profile:
    rules = dict(row.rules or {})
    rules.setdefault("timezone", DEFAULT_TIMEZONES.get(row.based_on or row.code))
    if rules["timezone"] is None:
        rules["timezone"] = DEFAULT_TIMEZONES[DEFAULT_PROFILE]
    return Profile(
        code=row.code,
        name=row.name,
        based_on=row.based_on,
        builtin=row.builtin,
        rules=ProfileRules(**rules),
        version=row.version,
        updated_at=row.updated_at,
        creditors=creditors,
    )


def load_profile(session: Session, code: str | None) -> Profile:
    """Return the profile `code`, or the default one when it is empty or missing."""
    row = session.get(ComplianceProfile, code or DEFAULT_PROFILE)
    if row is None:
        logger.warning("compliance profile %s is missing; using %s", code, "cn")
        row = session.get(ComplianceProfile, DEFAULT_PROFILE)
    if row is None:
        raise NotFound("profile_not_found", profile=code or DEFAULT_PROFILE)
    return _profile_of(row)


def profile_for_case(session: Session, case: Case) -> Profile:
    code = session.scalar(
        select(Creditor.compliance_profile).where(Creditor.id == case.creditor_id)
    )
    return load_profile(session, code)


def list_profiles(*, session: Session, actor: Actor) -> list[Profile]:
    """Return every profile with the creditors that use it, built-in ones first."""
    require_role(actor, *READER_ROLES)
    users: dict[str, list[str]] = {}
    for name, code in session.execute(
        select(Creditor.name, Creditor.compliance_profile).order_by(Creditor.name)
    ):
        users.setdefault(code, []).append(name)
    rows = session.scalars(
        select(ComplianceProfile).order_by(
            ComplianceProfile.builtin.desc(), ComplianceProfile.code
        )
    )
    return [_profile_of(row, tuple(users.get(row.code, ()))) for row in rows]


def _loosened(rules: ProfileRules, base: ProfileRules) -> tuple[str, Any, Any] | None:
    """Return the first rule that `rules` makes looser than `base`, if any."""
    if rules.start < base.start:
        return "window_start", rules.window_start, base.window_start
    if rules.end > base.end:
        return "window_end", rules.window_end, base.window_end
    for name in (
        "max_connected_calls_per_day",
        "max_unanswered_per_number_per_day",
        "max_calls_per_7_days",
    ):
        mine, theirs = getattr(rules, name), getattr(base, name)
        if theirs is not None and (mine is None or mine > theirs):
            return name, mine, theirs
    for name in ("quiet_days_after_conversation", "record_retention_years"):
        mine, theirs = getattr(rules, name), getattr(base, name)
        if theirs is not None and (mine is None or mine < theirs):
            return name, mine, theirs
    for name in ("recording_required", "opt_out_required"):
        if getattr(base, name) and not getattr(rules, name):
            return name, False, True
    return None


def _validated_rules(data: ProfileInput, base: Profile) -> ProfileRules:
    merged = {**base.rules.model_dump(), **data.rules}
    try:
        rules = ProfileRules(**merged)
    except ValueError as error:
        raise InvalidInput(
            "profile_rules_invalid", profile=data.code, detail=str(error)
        ) from None
    if rules.start >= rules.end:
        raise InvalidInput(
            "profile_window_empty",
            start=rules.window_start,
            end=rules.window_end,
        )
    loosened = _loosened(rules, base.rules)
    if loosened:
        rule, value, limit = loosened
        raise InvalidInput(
            "profile_loosens",
            rule=rule,
            value=value,
            base=base.code,
            limit=limit,
        )
    return rules


def save_profile(*, session: Session, actor: Actor, data: ProfileInput) -> Profile:
    """Create or edit a copy of a built-in profile; the copy may only tighten it."""
    require_role(actor, *ADMIN_ROLES)
    base_row = session.get(ComplianceProfile, data.based_on)
    if base_row is None or not base_row.builtin:
        raise InvalidInput("profile_base_not_builtin", base=data.based_on)
    rules = _validated_rules(data, _profile_of(base_row))

    row = session.scalar(
        select(ComplianceProfile)
        .where(ComplianceProfile.code == data.code)
        .with_for_update()
    )
    before = None
    if row is not None and row.builtin:
        raise InvalidInput("profile_builtin_read_only", profile=data.code)
    if row is None:
        if data.expected_version is not None:
            raise NotFound("profile_not_found", profile=data.code)
        row = ComplianceProfile(code=data.code, builtin=False, version=1)
        session.add(row)
    else:
        if data.expected_version is None:
            raise Conflict("profile_exists", profile=data.code)
        if data.expected_version != row.version:
            raise Conflict("profile_changed", profile=data.code)
        before = {"name": row.name, "based_on": row.based_on, "rules": row.rules}
        row.version = row.version + 1
    row.name = data.name.strip()
    row.based_on = base_row.code
    row.rules = rules.model_dump()
    row.updated_by = actor.id
    row.updated_at = func.now()
    session.flush()
    audit.record(
        session,
        actor,
        "compliance_profile_saved",
        "compliance_profile",
        row.code,
        before=before,
        after={"name": row.name, "based_on": row.based_on, "rules": row.rules},
    )
    session.commit()
    session.refresh(row)
    return _profile_of(row)


def set_creditor_profile(
    *, session: Session, actor: Actor, creditor_id: int, profile_code: str
) -> None:
    """Make `profile_code` the compliance profile of a creditor's cases."""
    require_role(actor, *ADMIN_ROLES)
    creditor = session.scalar(
        select(Creditor).where(Creditor.id == creditor_id).with_for_update()
    )
    if creditor is None:
        raise NotFound("creditor_not_found", creditor=creditor_id)
    if session.get(ComplianceProfile, profile_code) is None:
        raise NotFound("profile_not_found", profile=profile_code)
    before = creditor.compliance_profile
    if before == profile_code:
        return
    creditor.compliance_profile = profile_code
    audit.record(
        session,
        actor,
        "creditor_profile_set",
        "creditor",
        creditor.id,
        before={"compliance_profile": before},
        after={"compliance_profile": profile_code},
        detail={"creditor": creditor.name},
    )
    session.commit()


# Result codes.


def _code_view(row: ResultCode) -> ResultCodeView:
    return ResultCodeView(
        code=row.code,
        label_en=row.label_en,
        label_zh=row.label_zh,
        connected=row.connected,
        right_party=row.right_party,
        sets_flag=row.sets_flag,
        builtin=row.builtin,
        active=row.active,
    )


def list_result_codes(
    *, session: Session, actor: Actor, include_inactive: bool = False
) -> list[ResultCodeView]:
    """Return the result codes, built-in ones first in the order of DOMAIN.md."""
    query = select(ResultCode).order_by(
        ResultCode.builtin.desc(), ResultCode.created_at, ResultCode.code
    )
    if not include_inactive:
        query = query.where(ResultCode.active)
    return [_code_view(row) for row in session.scalars(query)]


def add_result_code(
    *, session: Session, actor: Actor, data: ResultCodeInput
) -> ResultCodeView:
    """Add an admin-defined result code."""
    from services.case_actions import FLAGS

    require_role(actor, *ADMIN_ROLES)
    if data.sets_flag is not None and data.sets_flag not in FLAGS:
        raise InvalidInput(
            "result_code_flag_unknown", flag=data.sets_flag, allowed=", ".join(FLAGS)
        )
    if data.right_party and not data.connected:
        raise InvalidInput("result_code_right_party_unconnected", result=data.code)
    if session.get(ResultCode, data.code) is not None:
        raise Conflict("result_code_exists", result=data.code)
    row = ResultCode(**data.model_dump(), builtin=False, active=True)
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "result_code_added",
        "result_code",
        row.code,
        after=data.model_dump(),
    )
    session.commit()
    return _code_view(row)


def result_code(session: Session, code: str) -> ResultCode:
    """Return an active result code, or InvalidInput listing the valid ones."""
    row = session.get(ResultCode, code.strip())
    if row is None or not row.active:
        codes = session.scalars(
            select(ResultCode.code).where(ResultCode.active).order_by(ResultCode.code)
        )
        raise InvalidInput("result_code_unknown", result=code, allowed=", ".join(codes))
    return row


# The guard.


@dataclass
class ComplianceVerdict:
    """Decision of the guard: allowed or not, the rule that decided, the message id and
    its values, when contact is allowed again, and warnings (message ids)."""

    allowed: bool
    rule: str | None = None
    message_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    allowed_from: datetime | None = None
    warnings: list[str] = field(default_factory=list)
    profile: str | None = None
    timezone: str | None = None

    def message(self, language: str = "en") -> str:
        """Return the refusal in `language`, with when contact is allowed again."""
        from recova.i18n import translate

        if self.allowed or self.message_id is None:
            return ""
        text_ = translate(self.message_id, language, **self.params)
        if self.allowed_from is not None:
            local = self.allowed_from.astimezone(ZoneInfo(self.timezone or "UTC"))
            text_ += " " + translate(
                "compliance.allowed_again",
                language,
                at=local.strftime("%Y-%m-%d %H:%M"),
                timezone=self.timezone,
            )
        return text_


class ComplianceRefused(InvalidInput):
    """An attempt the profile forbids; carries the verdict with its rule."""

    def __init__(self, verdict: ComplianceVerdict) -> None:
        super().__init__("compliance_refused", rule=verdict.rule)
        self.verdict = verdict
        self.rule = verdict.rule
        self.allowed_from = verdict.allowed_from

    def message(self, language: str = "en") -> str:
        return self.verdict.message(language)


@dataclass(frozen=True)
class PlannedContact:
    """What the guard needs to know about an attempt before it is written."""

    channel: str
    target: str
    at: datetime
    connected: bool = False
    target_address: str | None = None
    note: str | None = None
    recording_ref: str | None = None
    opt_out_included: bool = False


def normalise_phone(value: str | None) -> str | None:
    """Return a phone number as digits, without the +86 / 0086 country prefix."""
    if value is None:
        return None
    digits = re.sub(r"\D", "", value)
    if not digits:
        return value.strip() or None
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            return digits[len(prefix) :]
    return digits


def abusive_word(note: str | None) -> str | None:
    """Return the first threat or insult found in `note`, as written there."""
    if not note:
        return None
    found = ABUSIVE_PATTERN.search(note)
    return found.group(0) if found else None


def in_window(moment: datetime, rules: ProfileRules) -> bool:
    local = moment.astimezone(rules.zone).time()
    return rules.start <= local < rules.end


def next_window_start(moment: datetime, rules: ProfileRules) -> datetime:
    """Return `moment` when it is inside the window, else the next opening."""
    if in_window(moment, rules):
        return moment
    local = moment.astimezone(rules.zone)
    day = local.date()
    if local.time() >= rules.end:
        day += timedelta(days=1)
    return datetime.combine(day, rules.start, tzinfo=rules.zone)


def _day_bounds(moment: datetime, rules: ProfileRules) -> tuple[datetime, datetime]:
    day = moment.astimezone(rules.zone).date()
    start = datetime.combine(day, time(0), tzinfo=rules.zone)
    return start, datetime.combine(day + timedelta(days=1), time(0), tzinfo=rules.zone)


def _tomorrow(moment: datetime, rules: ProfileRules) -> datetime:
    return next_window_start(_day_bounds(moment, rules)[1], rules)


def _refuse(
    profile: Profile,
    rule: str,
    allowed_from: datetime | None = None,
    /,
    **params: Any,
) -> ComplianceVerdict:
    if allowed_from is not None:
        allowed_from = next_window_start(allowed_from, profile.rules)
    return ComplianceVerdict(
        allowed=False,
        rule=rule,
        message_id=f"compliance.{rule}",
        params={key: str(value) for key, value in params.items()},
        allowed_from=allowed_from,
        profile=profile.code,
        timezone=profile.rules.timezone,
    )


def _state_refusal(
    case: Case, plan: PlannedContact, profile: Profile
) -> ComplianceVerdict | None:
    """Refusals that come from the case alone: closed, paused, disputed, flags."""
    if case.status not in OPEN_STATUSES:
        return _refuse(profile, "case_closed", case_no=case.case_no, status=case.status)
    if case.status == "paused":
        until = case.paused_until
        resume = (
            datetime.combine(until, profile.rules.start, tzinfo=profile.rules.zone)
            if until
            else None
        )
        return _refuse(
            profile,
            "case_paused",
            resume,
            case_no=case.case_no,
            until=until.isoformat() if until else "—",
            reason=case.pause_reason or "—",
        )
    if case.status == "disputed":
        return _refuse(profile, "case_disputed", case_no=case.case_no)
    flags = list(case.flags or [])
    for flag in BLOCKING_FLAGS:
        if flag in flags:
            return _refuse(profile, "flag_blocked", case_no=case.case_no, flag=flag)
    # An opt-out is honoured under every profile, not only `us-regf`: once the
    # debtor has asked, sending anyway serves no one.
    if plan.channel in ELECTRONIC_CHANNELS and "opt_out_electronic" in flags:
        return _refuse(profile, "opted_out", case_no=case.case_no, channel=plan.channel)
    return None


def _message_refusal(
    plan: PlannedContact, profile: Profile
) -> ComplianceVerdict | None:
    word = abusive_word(plan.note)
    if word:
        return _refuse(profile, "abusive_note", word=word)
    if (
        profile.rules.opt_out_required
        and plan.channel in ELECTRONIC_CHANNELS
        and not plan.opt_out_included
    ):
        return _refuse(profile, "opt_out_missing", profile=profile.code)
    if plan.channel in TIMED_CHANNELS and not in_window(plan.at, profile.rules):
        return _refuse(
            profile,
            "window",
            next_window_start(plan.at, profile.rules),
            start=profile.rules.window_start,
            end=profile.rules.window_end,
            timezone=profile.rules.timezone,
        )
    return None


def _count(session: Session, sql: str, **params: Any) -> int:
    return int(session.execute(text(sql), params).scalar_one())


def _local_day(moment: datetime, rules: ProfileRules) -> str:
    """Return the day of `moment` in the debtor's time zone, as YYYY-MM-DD."""
    return moment.astimezone(ZoneInfo(rules.timezone)).date().isoformat()


def _daily_caps(
    session: Session, case: Case, plan: PlannedContact, profile: Profile
) -> ComplianceVerdict | None:
    rules = profile.rules
    start, end = _day_bounds(plan.at, rules)
    limit = rules.max_connected_calls_per_day
    if limit is not None and plan.target == "debtor":
        connected = _count(
            session,
            "SELECT count(*) FROM contact_attempts WHERE debtor_id = :debtor"
            " AND channel = 'phone' AND target = 'debtor' AND connected"
            " AND at >= :start AND at < :end",
            debtor=case.debtor_id,
            start=start,
            end=end,
        )
        if connected >= limit:
            return _refuse(
                profile,
                "connected_calls_per_day",
                _tomorrow(plan.at, rules),
                count=connected,
                limit=limit,
                day=_local_day(plan.at, rules),
            )
    limit = rules.max_unanswered_per_number_per_day
    number = normalise_phone(plan.target_address)
    if limit is not None and number:
        unanswered = _count(
            session,
            "SELECT count(*) FROM contact_attempts WHERE channel = 'phone'"
            " AND target_address = :number AND NOT connected"
            " AND at >= :start AND at < :end",
            number=number,
            start=start,
            end=end,
        )
        if unanswered >= limit:
            return _refuse(
                profile,
                "unanswered_per_number",
                _tomorrow(plan.at, rules),
                count=unanswered,
                limit=limit,
                number=mask_phone(number),
                day=_local_day(plan.at, rules),
            )
    return None


def _weekly_caps(
    session: Session, case: Case, plan: PlannedContact, profile: Profile
) -> ComplianceVerdict | None:
    rules = profile.rules
    if plan.target != "debtor":
        return None
    days = rules.quiet_days_after_conversation
    if days:
        spoke = session.execute(
            text(
                "SELECT max(at) FROM contact_attempts WHERE case_id = :case"
                " AND channel = 'phone' AND connected AND right_party"
                " AND at <= :at AND at > :since"
            ),
            {"case": case.id, "at": plan.at, "since": plan.at - timedelta(days=days)},
        ).scalar_one()
        if spoke is not None:
            return _refuse(
                profile,
                "quiet_after_conversation",
                spoke + timedelta(days=days),
                at=spoke.astimezone(rules.zone).strftime("%Y-%m-%d %H:%M"),
                days=days,
            )
    limit = rules.max_calls_per_7_days
    if limit is not None:
        calls = list(
            session.execute(
                text(
                    "SELECT at FROM contact_attempts WHERE case_id = :case"
                    " AND channel = 'phone' AND target = 'debtor'"
                    " AND at <= :at AND at > :since ORDER BY at"
                ),
                {"case": case.id, "at": plan.at, "since": plan.at - timedelta(days=7)},
            ).scalars()
        )
        if len(calls) >= limit:
            # The call that has to leave the 7-day window before another fits.
            leaving = calls[len(calls) - limit] if limit else plan.at
            return _refuse(
                profile,
                "calls_per_7_days",
                leaving + timedelta(days=7),
                count=len(calls),
                limit=limit,
            )
    return None


def _warnings(plan: PlannedContact, profile: Profile) -> list[str]:
    warnings = []
    if plan.target in ("contact", "third_party"):
        warnings.append("compliance.warn_no_disclosure")
    if (
        profile.rules.recording_required
        and plan.channel in RECORDED_CHANNELS
        and plan.connected
        and not (plan.recording_ref or "").strip()
    ):
        warnings.append("compliance.warn_recording_missing")
    return warnings


def lock_counts(session: Session, case: Case, plan: PlannedContact) -> None:
    """Serialise attempts on one debtor and one number until the transaction ends,
    so two collectors cannot both take the last call a cap allows."""
    keys = [f"recova.contact.debtor:{case.debtor_id}"]
    number = normalise_phone(plan.target_address)
    if plan.channel == "phone" and number:
        keys.append(f"recova.contact.number:{number}")
    for key in sorted(keys):
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key}
        )


def check_contact(
    *,
    session: Session,
    case: Case,
    plan: PlannedContact,
    profile: Profile | None = None,
) -> ComplianceVerdict:
    """Return the verdict of the case's profile on the planned attempt."""
    profile = profile or profile_for_case(session, case)
    refusal = _state_refusal(case, plan, profile) or _message_refusal(plan, profile)
    if refusal is None and plan.channel == "phone":
        refusal = _daily_caps(session, case, plan, profile) or _weekly_caps(
            session, case, plan, profile
        )
    if refusal is not None:
        return refusal
    return ComplianceVerdict(
        allowed=True,
        warnings=_warnings(plan, profile),
        profile=profile.code,
        timezone=profile.rules.timezone,
    )


def local_date(moment: datetime, profile: Profile) -> date:
    return moment.astimezone(profile.rules.zone).date()
