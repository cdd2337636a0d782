"""The case file (债务人档案): every section of one case in tabs, the contact log form
and the actions on the case.

The case comes from `?case=ID` or from the queue through st.session_state. Edits
carry the case version this page loaded, kept in session state until the user
reloads, so an edit made meanwhile by someone else fails with "changed by X" and
the typed values stay in the form.
"""

import time
import uuid
from datetime import date, datetime
from datetime import time as clock
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import polars as pl
import streamlit as st

from recova import ui
from recova.errors import RecovaError
from recova.i18n import format_day, format_moment, format_money
from services import (
    attachments,
    case_actions,
    compliance,
    contacts,
    promises,
    queue,
    scoring,
)
from services import case_file as case_file_service
from services.users import validated

actor = ui.require_actor()
t = ui.t
lang = ui.language()
zone = ZoneInfo(actor.timezone)
# A second submit of the same attempt within this many seconds is a double click.
DOUBLE_SUBMIT_SECONDS = 30
FORM_KEYS = (
    "contact_at_day",
    "contact_at_time",
    "contact_channel",
    "contact_target",
    "contact_reached",
    "contact_address",
    "contact_result",
    "contact_note",
    "contact_next_day",
    "contact_next_time",
    "contact_recording",
    "contact_opt_out",
    "contact_promise_amount",
    "contact_promise_due",
)


def moment(value) -> str:
    return format_moment(value, lang, actor.timezone) if value else "—"


def money(value) -> str:
    return format_money(value, lang) if value is not None else "—"


def label(prefix: str, code: str | None) -> str:
    if not code:
        return "—"
    key = f"{prefix}.{code}"
    translated = t(key)
    return code if translated == key else translated


def chosen_case_id() -> int | None:
    raw = st.query_params.get("case")
    if raw and str(raw).isdigit():
        st.session_state["case_file_id"] = int(raw)
    return st.session_state.get("case_file_id")


def version_key(case_id: int) -> str:
    return f"case_file_version_{case_id}"


def reload_case(case_id: int) -> None:
    st.session_state.pop(version_key(case_id), None)
    st.rerun()


def run_service(service, /, **kwargs):
    """Call a service and show a RecovaError in place.

    After a Conflict the banner at the top offers the reload, because this page
    loaded a newer version than the one the edit carried. Nothing typed is cleared.
    """
    try:
        with ui.db_session() as session:
            return service(session=session, **kwargs)
    except RecovaError as error:
        ui.show_error(error)
        return None


def saved(message: str, case_id: int, version: int | None = None) -> None:
    """Keep `message` for the next run, take the new version and rerun."""
    st.session_state["case_file_flash"] = message
    if version is None:
        st.session_state.pop(version_key(case_id), None)
    else:
        st.session_state[version_key(case_id)] = version
    st.rerun()


# Which case.

st.title(t("case_file.title"))
case_id = chosen_case_id()
with st.expander(t("case_file.open_other"), expanded=case_id is None):
    typed = st.number_input(
        t("case_file.case_id"), min_value=1, step=1, value=None, key="case_file_typed"
    )
    if st.button(t("case_file.open"), key="case_file_open") and typed:
        st.session_state["case_file_id"] = int(typed)
        st.query_params["case"] = str(int(typed))
        st.rerun()
if case_id is None:
    st.info(t("case_file.pick"))
    st.stop()

file = ui.call(case_file_service.case_file, actor=actor, case_id=case_id)
if file is None:
    st.stop()
view = file.case
follow = file.follow_up
loaded_version = st.session_state.setdefault(version_key(case_id), view.version)


def submit(model, service, message: str, **values) -> None:
    """Validate `values` as `model` for this case at the version the page loaded,
    run `service` with it, and keep `message` for the next run when it succeeds."""
    try:
        data = validated(
            model, case_id=case_id, expected_version=loaded_version, **values
        )
    except RecovaError as error:
        ui.show_error(error)
        return
    if run_service(service, actor=actor, data=data):
        saved(message, case_id)


st.subheader(t("cases.case_title", case_no=view.case_no, name=view.name or ""))
if "case_file_flash" in st.session_state:
    st.success(st.session_state.pop("case_file_flash"))
# Compliance warnings of the last save, such as a connected call without a
# recording reference, stand apart so they are not read as part of the success.
for warning in st.session_state.pop("case_file_warnings", []):
    st.warning(t(warning), icon=":material/warning:")
if loaded_version != view.version:
    st.warning(t("case_file.stale"))
    if st.button(
        t("case_file.reload"), key="case_file_reload", icon=":material/refresh:"
    ):
        reload_case(case_id)

# Money and the next action need the room; counts and the grade are short.
top = st.columns([3, 2, 1, 3, 1])
top[0].metric(t("cases.balance"), money(view.balance))
top[1].metric(t("cases.status"), t(f"status.{view.status}"))
top[2].metric(t("case_file.attempts"), follow["attempt_count"])
next_action = follow["next_action_at"]
top[3].metric(
    t("case_file.next_action"),
    format_moment(next_action, lang, actor.timezone, "short") if next_action else "—",
)
top[4].metric(t("case_file.grade"), follow["risk_grade"] or "—")
if follow["flags"]:
    st.warning(
        t("case_file.flags", flags=", ".join(label("flag", f) for f in follow["flags"]))
    )
if view.status == "paused":
    st.info(
        t(
            "case_file.paused",
            until=format_day(follow["paused_until"], lang) or "—",
            reason=follow["pause_reason"] or "—",
        )
    )
if file.masked:
    st.caption(t("cases.masked"))

TABS = [
    "overview",
    "contact",
    "promises",
    "payments",
    "history",
    "risk",
    "attachments",
]
if file.can_write:
    TABS.append("actions")
tabs = dict(zip(TABS, st.tabs([t(f"case_file.tab.{n}") for n in TABS]), strict=True))


# Overview: debtor, contacts, contract and amounts, follow-up state, next step.

with tabs["overview"]:
    left, middle, right = st.columns(3)
    with left:
        st.markdown(f"**{t('cases.debtor')}**")
        st.write(t("field.name"), view.name or "—")
        st.write(t("field.id_number"), view.id_number or "—")
        st.write(t("field.phone"), ", ".join(view.phones) or "—")
        st.write(t("field.address"), view.address or "—")
        st.write(t("field.province"), view.province or "—", view.city or "")
    with middle:
        st.markdown(f"**{t('cases.contract')}**")
        st.write(t("field.product"), view.product or "—")
        st.write(t("field.contract_no"), view.contract_no or "—")
        for key in ("principal", "interest", "fees", "total_due"):
            st.write(t(f"field.{key}"), money(getattr(view, key)))
        st.write(t("field.overdue_since"), format_day(view.overdue_since, lang))
        st.write(t("cases.batch"), view.batch)
    with right:
        st.markdown(f"**{t('case_file.follow_up')}**")
        st.write(t("queue.segment"), label("segment", follow["segment"]))
        st.write(t("cases.collector"), view.collector or "—")
        st.write(t("case_file.assigned_at"), moment(follow["assigned_at"]))
        st.write(
            t("case_file.first_contact_due"), moment(follow["first_contact_due_at"])
        )
        st.write(t("case_file.first_contact"), moment(follow["first_contact_at"]))
        st.write(t("case_file.last_attempt"), moment(follow["last_attempt_at"]))
        st.write(
            t("case_file.promise_due"),
            format_day(follow["promise_due_on"], lang) or "—",
        )
        st.write(t("case_file.profile"), file.compliance_profile)
        step = file.next_step
        if step is not None:
            st.info(
                t(
                    "case_file.next_step",
                    channel=label("channel", step.channel),
                    target=label("target", step.target),
                    day=step.day,
                    due=moment(step.due_at),
                )
            )
    if view.contacts:
        st.markdown(f"**{t('cases.contacts')}**")
        st.dataframe(
            pl.DataFrame(view.contacts).rename(
                lambda column: t(f"case_file.contact_{column}"), strict=False
            ),
            hide_index=True,
            key="cf_contacts",
        )

    st.markdown(f"**{t('unmask.title')}**")
    with st.form("unmask_form"):
        field = st.selectbox(
            t("unmask.field"),
            list(case_file_service.UNMASK_FIELDS),
            format_func=lambda v: t(f"unmask.field.{v}"),
            key="unmask_field",
        )
        reason = st.text_input(
            t("unmask.reason"), key="unmask_reason", help=t("unmask.reason_help")
        )
        unmask_clicked = st.form_submit_button(t("unmask.show"), key="unmask_show")
    if unmask_clicked:
        value = ui.call(
            case_file_service.unmask,
            actor=actor,
            case_id=case_id,
            field=field,
            reason=reason,
        )
        if value is not None:
            if isinstance(value, list) and value and isinstance(value[0], dict):
                st.dataframe(pl.DataFrame(value), hide_index=True, key="unmask_table")
            else:
                st.code(", ".join(value) if isinstance(value, list) else str(value))
            st.caption(t("unmask.audited"))


# Contact log: the form, then every attempt.


def fingerprint(values: dict) -> str:
    return repr(sorted((k, str(v)) for k, v in values.items()))


def clear_contact_form() -> None:
    for key in FORM_KEYS:
        st.session_state.pop(key, None)
    st.session_state["contact_nonce"] = uuid.uuid4().hex


def local_datetime(day: date | None, hour: clock | None) -> datetime | None:
    if day is None:
        return None
    return datetime.combine(day, hour or clock(10, 0), zone)


def parse_amount(text_value: str) -> Decimal | None:
    cleaned = (text_value or "").replace(",", "").replace("，", "").strip()
    if not cleaned:
        return None
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        return Decimal("NaN")


def contact_form() -> None:
    if st.session_state.pop("contact_clear", False):
        clear_contact_form()
    st.session_state.setdefault("contact_nonce", uuid.uuid4().hex)
    codes = ui.call(compliance.list_result_codes, actor=actor) or []
    code_labels = {c.code: c.label(lang) for c in codes}
    reached = {
        "debtor_phone": t("case_file.reached.debtor_phone"),
        "typed": t("case_file.reached.typed"),
    }
    for index, contact in enumerate(view.contacts):
        reached[f"contact_{index}"] = t(
            "case_file.reached.contact",
            name=contact["name"] or "",
            relation=contact["relation"] or "",
            phone=contact["phone"] or "",
        )
    contact_ids = file.contact_ids

    with st.form("contact_form", clear_on_submit=False):
        first = st.columns(3)
        channel = first[0].selectbox(
            t("case_file.channel"),
            ["phone", "sms", "wechat", "email", "letter", "visit"],
            format_func=lambda v: label("channel", v),
            key="contact_channel",
        )
        target = first[1].selectbox(
            t("case_file.target"),
            ["debtor", "contact", "third_party"],
            format_func=lambda v: label("target", v),
            key="contact_target",
        )
        result = first[2].selectbox(
            t("case_file.result"),
            list(code_labels),
            format_func=lambda v: code_labels[v],
            index=None,
            placeholder=t("case_file.choose"),
            key="contact_result",
        )
        second = st.columns(2)
        reached_key = second[0].selectbox(
            t("case_file.reached"),
            list(reached),
            format_func=reached.get,
            key="contact_reached",
        )
        address = second[1].text_input(
            t("case_file.address"),
            key="contact_address",
            help=t("case_file.address_help"),
        )
        note = st.text_area(t("case_file.note"), key="contact_note", max_chars=2000)
        when = st.columns(2)
        at_day = when[0].date_input(
            t("case_file.at_day"),
            value=None,
            key="contact_at_day",
            help=t("case_file.at_help"),
        )
        at_time = when[1].time_input(
            t("case_file.at_time"), value=None, key="contact_at_time"
        )
        third = st.columns(4)
        next_day = third[0].date_input(
            t("case_file.next_day"), value=None, key="contact_next_day"
        )
        next_time = third[1].time_input(
            t("case_file.next_time"), value=clock(10, 0), key="contact_next_time"
        )
        recording = third[2].text_input(
            t("case_file.recording"), key="contact_recording"
        )
        opt_out = third[3].checkbox(t("case_file.opt_out"), key="contact_opt_out")
        fourth = st.columns(2)
        promise_amount = fourth[0].text_input(
            t("case_file.promise_amount"), key="contact_promise_amount"
        )
        promise_due = fourth[1].date_input(
            t("case_file.promise_due_on"), value=None, key="contact_promise_due"
        )
        submitted = st.form_submit_button(
            t("case_file.save_attempt"), type="primary", key="contact_save"
        )
    if not submitted:
        return
    if result is None:
        st.error(t("case_file.result_required"))
        return

    contact_id = None
    target_address = address.strip() or None
    if reached_key.startswith("contact_"):
        contact_id = contact_ids[int(reached_key.removeprefix("contact_"))]
        target_address = None
    elif reached_key == "debtor_phone" and channel == "phone":
        target_address = None
    values = {
        "case_id": case_id,
        "expected_version": loaded_version,
        "channel": channel,
        "target": target,
        "target_address": target_address,
        "contact_id": contact_id,
        "result_code": result,
        "note": note.strip() or None,
        "at": local_datetime(at_day, at_time),
        "next_follow_up_at": local_datetime(next_day, next_time),
        "recording_ref": recording.strip() or None,
        "opt_out_included": opt_out,
        "promise_amount": parse_amount(promise_amount),
        "promise_due_on": promise_due,
    }
    submitted_print = fingerprint(
        {k: v for k, v in values.items() if k != "expected_version"}
    )
    last = st.session_state.get("contact_last_saved")
    if (
        last
        and last[0] == submitted_print
        and time.monotonic() - last[1] < DOUBLE_SUBMIT_SECONDS
    ):
        st.info(t("case_file.already_saved"))
        return
    try:
        data = validated(contacts.AttemptInput, **values)
    except RecovaError as error:
        ui.show_error(error)
        return
    outcome = run_service(contacts.record_attempt, actor=actor, data=data)
    if outcome is None:
        return
    st.session_state["contact_last_saved"] = (submitted_print, time.monotonic())
    st.session_state["contact_clear"] = True
    st.session_state["case_file_saved_attempt"] = outcome.attempt_id
    message = t("case_file.attempt_saved", next=moment(outcome.next_action_at))
    st.session_state["case_file_warnings"] = list(outcome.warnings)
    saved(message, case_id, outcome.case_version)


def attempts_table() -> None:
    if not file.attempts:
        st.caption(t("case_file.no_attempts"))
        return
    rows = file.attempts
    st.dataframe(
        pl.DataFrame(
            {
                t("case_file.at"): [moment(r["at"]) for r in rows],
                t("case_file.channel"): [label("channel", r["channel"]) for r in rows],
                t("case_file.target"): [label("target", r["target"]) for r in rows],
                t("case_file.address"): [r["target_address"] or "" for r in rows],
                t("case_file.result"): [r["result_code"] for r in rows],
                t("case_file.note"): [r["note"] or "" for r in rows],
                t("case_file.next_day"): [moment(r["next_follow_up_at"]) for r in rows],
                t("cases.collector"): [r["collector"] or "" for r in rows],
            }
        ),
        hide_index=True,
        width="stretch",
        key="cf_attempts",
    )


with tabs["contact"]:
    if file.can_write:
        contact_form()
        if st.session_state.get("case_file_saved_attempt") and actor.role in (
            "collector",
            "team_lead",
        ):
            if st.button(
                t("case_file.next_in_queue"),
                key="case_file_next",
                icon=":material/skip_next:",
            ):
                next_id = ui.call(queue.next_case_id, actor=actor)
                st.session_state.pop("case_file_saved_attempt", None)
                if next_id is None:
                    st.info(t("queue.empty"))
                else:
                    st.session_state["case_file_id"] = next_id
                    st.query_params["case"] = str(next_id)
                    st.rerun()
    attempts_table()


# Promises and plans.

with tabs["promises"]:
    if file.promises:
        st.dataframe(
            pl.DataFrame(
                {
                    t("case_file.promise_due_on"): [
                        format_day(p["due_on"], lang) for p in file.promises
                    ],
                    t("case_file.promise_amount"): [
                        money(p["amount"]) for p in file.promises
                    ],
                    t("case_file.paid"): [
                        money(p["paid_amount"]) for p in file.promises
                    ],
                    t("cases.status"): [
                        label("promise.status", p["status"]) for p in file.promises
                    ],
                    t("case_file.plan"): [p["plan_id"] or "" for p in file.promises],
                }
            ),
            hide_index=True,
            key="cf_promises",
        )
    else:
        st.caption(t("case_file.no_promises"))
    if file.can_write:
        with st.form("promise_form", clear_on_submit=True):
            st.markdown(f"**{t('case_file.new_promise')}**")
            columns = st.columns(2)
            amount = columns[0].text_input(
                t("case_file.promise_amount"), key="promise_amount"
            )
            due_on = columns[1].date_input(
                t("case_file.promise_due_on"), value=None, key="promise_due"
            )
            promise_clicked = st.form_submit_button(
                t("case_file.save_promise"), key="promise_save"
            )
        if promise_clicked:
            try:
                parsed_amount = parse_amount(amount)
            except RecovaError as error:
                ui.show_error(error)
            else:
                submit(
                    promises.PromiseInput,
                    promises.create_promise,
                    t("case_file.promise_saved"),
                    amount=parsed_amount,
                    due_on=due_on,
                )
        with st.form("plan_form", clear_on_submit=True):
            st.markdown(f"**{t('case_file.new_plan')}**")
            plan_text = st.text_area(
                t("case_file.plan_lines"),
                key="plan_lines",
                help=t("case_file.plan_help"),
            )
            plan_note = st.text_input(t("case_file.note"), key="plan_note")
            planned = st.form_submit_button(t("case_file.save_plan"), key="plan_save")
        if planned:
            lines = [line.split() for line in plan_text.splitlines() if line.strip()]
            submit(
                promises.PlanInput,
                promises.create_plan,
                t("case_file.plan_saved"),
                installments=[
                    {"due_on": parts[0], "amount": parts[-1]} for parts in lines
                ],
                note=plan_note or None,
            )
    if file.plans:
        st.dataframe(pl.DataFrame(file.plans), hide_index=True, key="cf_plans")


# Payments, history, attachments.

with tabs["payments"]:
    if file.payments:
        st.dataframe(
            pl.DataFrame(
                {
                    t("case_file.paid_on"): [
                        format_day(p["paid_on"], lang) for p in file.payments
                    ],
                    t("case_file.amount"): [money(p["amount"]) for p in file.payments],
                    t("case_file.transaction"): [
                        p["transaction_id"] for p in file.payments
                    ],
                    t("case_file.channel"): [p["channel"] or "" for p in file.payments],
                }
            ),
            hide_index=True,
            key="cf_payments",
        )
    else:
        st.caption(t("case_file.no_payments"))

with tabs["history"]:
    if file.history:
        st.dataframe(
            pl.DataFrame(
                {
                    t("case_file.at"): [moment(h["at"]) for h in file.history],
                    t("case_file.event"): [
                        label("event", h["kind"]) for h in file.history
                    ],
                    t("case_file.by"): [h["actor_name"] or "" for h in file.history],
                    t("case_file.from"): [
                        h["from_collector"] or "" for h in file.history
                    ],
                    t("case_file.to"): [h["to_collector"] or "" for h in file.history],
                    t("case_file.reason"): [h["reason"] or "" for h in file.history],
                }
            ),
            hide_index=True,
            key="cf_history",
        )
    else:
        st.caption(t("case_file.no_history"))

with tabs["risk"]:
    explained = ui.call(scoring.explain_case, actor=actor, case_id=case_id)
    if explained is None or explained.score is None:
        st.caption(t("case_file.risk_none"))
    else:
        columns = st.columns(3)
        columns[0].metric(t("case_file.grade"), explained.grade or "—")
        columns[1].metric(t("case_file.risk_score"), f"{explained.score:.2f}")
        columns[2].metric(t("case_file.risk_model"), explained.model or "—")
        st.caption(
            t("case_file.risk_scored_on", day=format_day(explained.scored_on, lang))
        )
        if explained.lines:
            st.markdown(f"**{t('case_file.risk_points')}**")
            st.dataframe(
                pl.DataFrame(
                    {
                        t("case_file.risk_feature"): [
                            t(f"score.feature.{line.feature}")
                            for line in explained.lines
                        ],
                        t("case_file.risk_value"): [
                            "—" if line.value is None else str(line.value)
                            for line in explained.lines
                        ],
                        t("case_file.risk_bin"): [line.bin for line in explained.lines],
                        t("case_file.risk_line_points"): [
                            line.points for line in explained.lines
                        ],
                    }
                ),
                hide_index=True,
                key="cf_risk_lines",
            )
        elif explained.factors:
            st.markdown(f"**{t('case_file.risk_factors')}**")
            for factor in explained.factors:
                st.write(
                    t(
                        "case_file.risk_factor",
                        feature=t(f"score.feature.{factor['feature']}"),
                        value="—" if factor.get("value") is None else factor["value"],
                        effect=f"{float(factor.get('effect') or 0):+.2f}",
                    )
                )

with tabs["attachments"]:
    for item in file.attachments:
        columns = st.columns([3, 1, 1])
        columns[0].write(
            f"{item.file_name} · {item.size:,} B · {moment(item.created_at)}"
        )
        if columns[1].button(t("attachment.prepare"), key=f"attachment_get_{item.id}"):
            fetched = ui.call(
                attachments.get_attachment, actor=actor, attachment_id=item.id
            )
            if fetched is not None:
                st.session_state[f"attachment_bytes_{item.id}"] = fetched
        ready = st.session_state.get(f"attachment_bytes_{item.id}")
        if ready:
            columns[2].download_button(
                t("attachment.download"),
                data=ready[1],
                file_name=ready[0],
                key=f"attachment_download_{item.id}",
            )
    if not file.attachments:
        st.caption(t("attachment.none"))
    if file.can_write:
        upload = st.file_uploader(
            t("attachment.upload"), key="attachment_upload", help=t("attachment.limit")
        )
        if upload is not None and st.button(
            t("attachment.save"), key="attachment_save"
        ):
            row = ui.call(
                attachments.add_attachment,
                actor=actor,
                case_id=case_id,
                file_name=upload.name,
                content=upload.getvalue(),
                content_type=upload.type,
            )
            if row is not None:
                saved(t("attachment.saved", name=row.file_name), case_id)


# Actions on the case: pause or resume, flags, switch request.

if file.can_write:
    with tabs["actions"]:
        if view.status == "paused":
            with st.form("resume_form"):
                resume_reason = st.text_input(
                    t("case_file.reason"), key="resume_reason"
                )
                resumed = st.form_submit_button(
                    t("case_file.resume"), key="resume_save"
                )
            if resumed:
                submit(
                    case_actions.ResumeInput,
                    case_actions.resume_case,
                    t("case_file.resumed"),
                    reason=resume_reason or None,
                )
        else:
            with st.form("pause_form"):
                pause_reason = st.text_input(t("case_file.reason"), key="pause_reason")
                resume_on = st.date_input(
                    t("case_file.resume_on"), value=None, key="pause_resume_on"
                )
                paused = st.form_submit_button(t("case_file.pause"), key="pause_save")
            if paused:
                submit(
                    case_actions.PauseInput,
                    case_actions.pause_case,
                    t("case_file.paused_saved"),
                    reason=pause_reason,
                    resume_on=resume_on,
                )

        with st.form("flag_form"):
            flag = st.selectbox(
                t("case_file.flag"),
                list(case_actions.FLAGS),
                format_func=lambda v: label("flag", v),
                key="flag_pick",
            )
            flag_on = st.radio(
                t("case_file.flag_state"),
                [True, False],
                horizontal=True,
                format_func=lambda v: t(f"case_file.flag_on.{v}"),
                key="flag_on",
            )
            flag_reason = st.text_input(t("case_file.reason"), key="flag_reason")
            flagged = st.form_submit_button(t("case_file.save_flag"), key="flag_save")
        if flagged:
            submit(
                case_actions.FlagInput,
                case_actions.set_flag,
                t("case_file.flag_saved"),
                flag=flag,
                on=flag_on,
                reason=flag_reason,
            )

        with st.form("switch_form"):
            switch_reason = st.text_input(t("case_file.reason"), key="switch_reason")
            switched = st.form_submit_button(
                t("case_file.request_switch"), key="switch_save"
            )
        if switched:
            submit(
                case_actions.SwitchRequest,
                case_actions.request_switch,
                t("case_file.switch_saved"),
                reason=switch_reason,
            )
