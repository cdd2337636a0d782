"""Approvals: settlement and write-off requests at the user's level, with the case's
history, approve or reject with a reason; notifications; authority limits."""

import json

import polars as pl
import streamlit as st

from recova import ui
from recova.errors import RecovaError
from recova.i18n import format_moment, format_money
from services import approvals
from services.users import validated

actor = ui.require_actor()
t = ui.t
lang = ui.language()

st.title(t("approvals.title"))


def _when(value) -> str:
    return format_moment(value, lang, actor.timezone)


def _request_label(row: dict) -> str:
    return t(
        "approvals.option",
        id=row["id"],
        kind=t(f"approvals.kind.{row['kind']}"),
        case_no=row["case_no"],
        amount=format_money(row["amount"], lang),
    )


def _requests_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            t("approvals.request_id"): [row["id"] for row in rows],
            t("field.case_no"): [row["case_no"] for row in rows],
            t("field.name"): [row["debtor"] for row in rows],
            t("approvals.kind"): [t(f"approvals.kind.{row['kind']}") for row in rows],
            t("approvals.amount"): [format_money(row["amount"], lang) for row in rows],
            t("cases.balance"): [format_money(row["balance"], lang) for row in rows],
            t("approvals.status"): [
                t(f"approvals.status.{row['status']}") for row in rows
            ],
            t("approvals.next_level"): [
                t(f"approvals.level.{row['next_level']}") if row["next_level"] else ""
                for row in rows
            ],
            t("approvals.requested_by"): [row["requested_by"] for row in rows],
            t("approvals.requested_at"): [_when(row["created_at"]) for row in rows],
        }
    )


def notifications_section() -> None:
    items = ui.call(approvals.list_notifications, actor=actor) or []
    if not items:
        return
    with st.container(border=True):
        st.markdown(f"**{t('approvals.notifications', count=len(items))}**")
        for item in items:
            params = dict(item.params)
            params["kind"] = t(f"approvals.kind.{params.get('kind')}")
            if params.get("level"):
                params["level"] = t(f"approvals.level.{params['level']}")
            if params.get("reason") in (
                "request_case_closed",
                "request_balance_changed",
            ):
                params["reason"] = t(f"approvals.cancel_reason.{params['reason']}")
            st.write(f"{_when(item.created_at)} · {t(f'notify.{item.kind}', **params)}")
        if st.button(t("approvals.mark_read"), key="notifications_read"):
            ui.call(
                approvals.mark_read,
                actor=actor,
                notification_ids=[item.id for item in items],
            )
            st.rerun()


def detail_section(request_id: int, step: int | None) -> None:
    detail = ui.call(approvals.request_detail, actor=actor, request_id=request_id)
    if detail is None:
        return
    st.subheader(_request_label(detail))
    left, right = st.columns(2)
    with left:
        st.write(t("cases.creditor"), detail["creditor"])
        st.write(t("field.name"), detail["debtor"] or "—")
        st.write(t("cases.status"), t(f"status.{detail['case_status']}"))
        st.write(t("cases.balance"), format_money(detail["balance"], lang))
        st.write(
            t("approvals.balance_at_request"),
            format_money(detail["balance_at_request"], lang),
        )
    with right:
        st.write(t("approvals.kind"), t(f"approvals.kind.{detail['kind']}"))
        st.write(t("approvals.amount"), format_money(detail["amount"], lang))
        st.write(t("approvals.reason"), detail["reason"])
        st.write(t("approvals.evidence"), detail["evidence"] or "—")
        st.write(
            t("approvals.final_level"), t(f"approvals.level.{detail['final_level']}")
        )
        st.write(t("approvals.requested_by"), detail["requested_by"])

    if detail["approvals"]:
        st.markdown(f"**{t('approvals.chain')}**")
        st.dataframe(
            pl.DataFrame(
                {
                    t("approvals.step"): [a["step"] for a in detail["approvals"]],
                    t("approvals.level"): [
                        t(f"approvals.level.{a['level']}") for a in detail["approvals"]
                    ],
                    t("approvals.approver"): [
                        a["approver"] for a in detail["approvals"]
                    ],
                    t("approvals.decision"): [
                        t(f"approvals.decision.{a['decision']}")
                        for a in detail["approvals"]
                    ],
                    t("approvals.reason"): [a["reason"] for a in detail["approvals"]],
                    t("approvals.decided_at"): [
                        _when(a["at"]) for a in detail["approvals"]
                    ],
                }
            ),
            hide_index=True,
        )
    history_section(detail)
    if step is not None and detail["status"] == "pending":
        decision_section(detail, step)


def history_section(detail: dict) -> None:
    with st.expander(t("approvals.history"), expanded=False):
        if detail["payments"]:
            st.markdown(f"**{t('approvals.payments')}**")
            st.dataframe(
                pl.DataFrame(
                    {
                        t("payments.field.transaction_id"): [
                            p["transaction_id"] for p in detail["payments"]
                        ],
                        t("payments.field.amount"): [
                            format_money(p["amount"], lang) for p in detail["payments"]
                        ],
                        t("payments.field.paid_on"): [
                            p["paid_on"] for p in detail["payments"]
                        ],
                        t("payments.field.channel"): [
                            p["channel"] for p in detail["payments"]
                        ],
                    }
                ),
                hide_index=True,
            )
        if detail["history"]:
            st.markdown(f"**{t('approvals.audit')}**")
            st.dataframe(
                pl.DataFrame(
                    {
                        t("audit.at"): [_when(h["at"]) for h in detail["history"]],
                        t("audit.user"): [h["actor"] for h in detail["history"]],
                        t("audit.action"): [h["action"] for h in detail["history"]],
                        t("audit.before"): [
                            json.dumps(h["before"], ensure_ascii=False)
                            for h in detail["history"]
                        ],
                        t("audit.after"): [
                            json.dumps(h["after"], ensure_ascii=False)
                            for h in detail["history"]
                        ],
                    }
                ),
                hide_index=True,
            )
        if not detail["payments"] and not detail["history"]:
            st.write(t("intake.none"))


def decision_section(detail: dict, step: int) -> None:
    comment = st.text_area(
        t("approvals.comment"),
        key=f"approval_comment_{detail['id']}",
        help=t("approvals.comment_help"),
    )
    left, right = st.columns(2)
    approve = left.button(
        t("approvals.approve"),
        type="primary",
        key="approve_button",
        icon=":material/check:",
    )
    reject = right.button(
        t("approvals.reject"), key="reject_button", icon=":material/close:"
    )
    if not (approve or reject):
        return
    service = approvals.approve if approve else approvals.reject
    try:
        decision = validated(
            approvals.Decision,
            request_id=detail["id"],
            step=step,
            reason=comment or None,
        )
    except RecovaError as error:
        ui.show_error(error)
        return
    outcome = ui.call(service, actor=actor, decision=decision)
    if outcome is None:
        return
    if outcome.status == "pending":
        level = t(f"approvals.level.{outcome.next_level}")
        st.session_state["approval_message"] = t("approvals.passed_up", level=level)
    else:
        status = t(f"approvals.status.{outcome.status}")
        st.session_state["approval_message"] = t("approvals.decided", status=status)
    st.rerun()


def pending_section() -> None:
    rows = ui.call(approvals.list_pending, actor=actor) or []
    st.subheader(t("approvals.pending", count=len(rows)))
    if not rows:
        st.info(t("approvals.none_pending"))
        return
    st.dataframe(_requests_frame(rows), hide_index=True, width="stretch")
    by_id = {row["id"]: row for row in rows}
    chosen = st.selectbox(
        t("approvals.pick"),
        list(by_id),
        format_func=lambda key: _request_label(by_id[key]),
        key="approval_pick",
    )
    detail_section(chosen, by_id[chosen]["step"])


def all_requests_section() -> None:
    rows = ui.call(approvals.list_requests, actor=actor) or []
    title = t("approvals.mine") if actor.role == "collector" else t("approvals.all")
    st.subheader(title)
    if not rows:
        st.write(t("intake.none"))
        return
    st.dataframe(
        _requests_frame(rows).with_columns(
            pl.Series(
                t("approvals.decision_reason"),
                [_decision_reason(row) for row in rows],
            )
        ),
        hide_index=True,
        width="stretch",
        key="approval_requests_table",
    )


def _decision_reason(row: dict) -> str:
    reason = row["decision_reason"] or ""
    if reason in ("request_case_closed", "request_balance_changed"):
        return t(f"approvals.cancel_reason.{reason}")
    return reason


def limits_section() -> None:
    with ui.db_session() as session:
        limits = approvals.get_limits(session=session)
    with st.expander(t("approvals.limits")), st.form("approval_limits"):
        team_lead = st.text_input(
            t("approvals.limit.team_lead"),
            value=f"{limits.team_lead:.2f}",
            key="limit_team_lead",
        )
        manager = st.text_input(
            t("approvals.limit.manager"),
            value=f"{limits.manager:.2f}",
            key="limit_manager",
        )
        st.caption(t("approvals.limits_help"))
        if not st.form_submit_button(t("approvals.save_limits")):
            return
        try:
            new = validated(
                approvals.ApprovalLimits,
                team_lead=team_lead.replace(",", "").strip(),
                manager=manager.replace(",", "").strip(),
            )
        except RecovaError as error:
            ui.show_error(error)
            return
        try:
            with ui.db_session() as session:
                approvals.set_limits(session=session, actor=actor, limits=new)
        except RecovaError as error:
            ui.show_error(error)
            return
        st.success(t("approvals.limits_saved"))


message = st.session_state.pop("approval_message", None)
if message:
    st.success(message)
notifications_section()
if actor.role in approvals.APPROVER_ROLES:
    pending_section()
all_requests_section()
if actor.role == "admin":
    limits_section()
