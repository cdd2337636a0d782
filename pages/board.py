"""Assignment board: collectors' load, automatic assignment with a preview, manual
moves, switch of collector, recall of a batch and collectors' settings."""

from typing import Any

import plotly.express as px
import polars as pl
import streamlit as st

from recova import ui
from recova.errors import RecovaError
from recova.i18n import format_money
from services import assignment, board, case_moves, cases
from services.users import validated

actor = ui.require_actor()
t = ui.t
lang = ui.language()
is_manager = actor.role in ("admin", "manager")
UNASSIGNED = 0
AUTO = 0


def label(prefix: str, code: str | None) -> str:
    """Return the translation of `prefix.code`, or the code when it has none."""
    if not code:
        return t(f"{prefix}.none")
    key = f"{prefix}.{code}"
    translated = t(key)
    return code if translated == key else translated


def money(amount) -> str:
    return format_money(amount, lang)


def forget_case_lists() -> None:
    for key in [key for key in st.session_state if str(key).startswith("board_rows_")]:
        del st.session_state[key]


def flash(message: str) -> None:
    st.session_state["board_flash"] = message
    forget_case_lists()
    st.rerun()


def run_service(service, /, **kwargs) -> Any:
    """Call a service; show a RecovaError in place and return None.

    After an error the listed cases are loaded again on the next run, so the
    manager sees the change that caused it.
    """
    try:
        with ui.db_session() as session:
            return service(session=session, **kwargs)
    except RecovaError as error:
        ui.show_error(error)
        forget_case_lists()
        return None


def case_rows(source: int) -> list[dict[str, Any]]:
    """Return the cases listed for `source` as first loaded, with their versions.

    The list stays as the manager saw it until a move succeeds or the manager
    reloads it. A case that someone else changed in the meantime then makes the
    move fail with a Conflict, instead of the move using the newer version unseen.
    """
    key = f"board_rows_{source}"
    if key not in st.session_state:
        if source == UNASSIGNED:
            st.session_state[key] = view.unassigned
        else:
            st.session_state[key] = (
                ui.call(board.list_collector_cases, actor=actor, collector_id=source)
                or []
            )
    return st.session_state[key]


st.title(t("board.title"))
st.caption(t("board.caption"))
# One slot whether or not there is a message, so the tabs below keep their place
# in the page and the open tab stays open after a move.
flash_slot = st.empty()
if "board_flash" in st.session_state:
    flash_slot.success(st.session_state.pop("board_flash"))

creditor_id = None
creditor_name = None
if is_manager:
    with ui.db_session() as session:
        creditor_names = {
            c.id: c.name for c in cases.list_creditors(session=session, actor=actor)
        }
    creditor_id = st.selectbox(
        t("board.creditor"),
        [None, *creditor_names],
        format_func=lambda cid: (
            t("board.all_creditors") if cid is None else creditor_names[cid]
        ),
        key="board_creditor",
        help=t("board.creditor_help"),
    )
    creditor_name = creditor_names.get(creditor_id)

view = ui.call(board.load_board, actor=actor, creditor_id=creditor_id)
if view is None:
    st.stop()
collectors = {c.user_id: c for c in view.collectors}


def collector_label(user_id: int) -> str:
    collector = collectors[user_id]
    state = (
        ""
        if collector.is_active and not collector.is_paused
        else (
            " · "
            + t("board.state.paused" if collector.is_active else "board.state.inactive")
        )
    )
    return f"{collector.display_name} ({collector.username}){state}"


def state_of(collector: board.CollectorLoad) -> str:
    if not collector.is_active:
        return t("board.state.inactive")
    return t("board.state.paused" if collector.is_paused else "board.state.active")


tab_names = ["load", "manual"] + (
    ["auto", "recall", "collectors"] if is_manager else []
)
tab_labels = [t(f"board.tab.{name}") for name in tab_names]
tabs = dict(zip(tab_names, st.tabs(tab_labels, key="board_tabs"), strict=True))

# Load per collector, as a table and a chart.
with tabs["load"]:
    columns = st.columns(3)
    columns[0].metric(t("board.metric.collectors"), len(view.collectors))
    columns[1].metric(
        t("board.metric.open_cases"), sum(c.open_cases for c in view.collectors)
    )
    columns[2].metric(t("board.metric.unassigned"), view.unassigned_total)

    segment_codes = sorted({s for c in view.collectors for s in c.by_segment})
    if view.collectors:
        load_table = pl.DataFrame(
            {
                t("board.collector"): [c.username for c in view.collectors],
                t("board.name"): [c.display_name for c in view.collectors],
                t("board.team"): [c.team or "" for c in view.collectors],
                t("board.state"): [state_of(c) for c in view.collectors],
                t("board.open_cases"): [c.open_cases for c in view.collectors],
                t("board.balance"): [money(c.balance) for c in view.collectors],
                t("board.capacity"): [c.capacity for c in view.collectors],
                t("board.load"): [
                    f"{c.open_cases / c.capacity:.0%}" if c.capacity else "—"
                    for c in view.collectors
                ],
                **{
                    label("segment", code): [
                        c.by_segment.get(code, 0) for c in view.collectors
                    ]
                    for code in segment_codes
                },
            }
        )
        st.dataframe(load_table, hide_index=True, width="stretch", key="board_load")
        chart_rows = [
            {
                "collector": c.username,
                "segment": label("segment", code),
                "cases": count,
            }
            for c in view.collectors
            for code, count in c.by_segment.items()
        ]
        if chart_rows:
            figure = px.bar(
                pl.DataFrame(chart_rows).to_pandas(),
                x="collector",
                y="cases",
                color="segment",
                labels={
                    "collector": t("board.collector"),
                    "cases": t("board.open_cases"),
                    "segment": t("board.segment"),
                },
                title=t("board.chart_title"),
            )
            st.plotly_chart(figure, key="board_chart")
    else:
        st.info(t("board.no_collectors"))

# Manual assignment and reassignment of selected cases, and switch of collector.
with tabs["manual"]:
    sources = ([UNASSIGNED] if is_manager else []) + list(collectors)
    if not sources:
        st.info(t("board.no_collectors"))
    else:
        source = st.selectbox(
            t("board.source"),
            sources,
            format_func=lambda uid: (
                t("board.unassigned") if uid == UNASSIGNED else collector_label(uid)
            ),
            key="board_source",
        )
        rows = case_rows(source)
        if source == UNASSIGNED and view.unassigned_total > len(rows):
            st.caption(
                t(
                    "board.unassigned_shown",
                    shown=len(rows),
                    total=view.unassigned_total,
                )
            )
        if st.button(t("board.reload"), key="board_reload", icon=":material/refresh:"):
            forget_case_lists()
            st.rerun()

        if rows:
            case_table = pl.DataFrame(
                {
                    t("field.case_no"): [r["case_no"] for r in rows],
                    t("board.creditor"): [r["creditor"] for r in rows],
                    t("field.name"): [r["name"] or "" for r in rows],
                    t("field.province"): [r["province"] or "" for r in rows],
                    t("board.balance"): [money(r["balance"]) for r in rows],
                    t("board.segment"): [label("segment", r["segment"]) for r in rows],
                    t("board.status_or_reason"): [
                        label("reason", r["reason"])
                        if source == UNASSIGNED
                        else t(f"status.{r['status']}")
                        for r in rows
                    ],
                }
            )
            st.dataframe(
                case_table, hide_index=True, width="stretch", key="board_source_cases"
            )
        else:
            st.info(t("board.no_cases"))

        by_id = {r["id"]: r for r in rows}
        targets = [
            uid
            for uid, c in collectors.items()
            if uid != source and c.is_active and not c.is_paused
        ]
        with st.form("board_move_form"):
            picked = st.multiselect(
                t("board.pick_cases"),
                list(by_id),
                format_func=lambda cid: (
                    f"{by_id[cid]['case_no']} · "
                    f"{by_id[cid]['name'] or ''} · {money(by_id[cid]['balance'])}"
                ),
                key="board_cases",
            )
            target = st.selectbox(
                t("board.target"),
                targets,
                format_func=collector_label,
                index=None,
                placeholder=t("case_file.choose"),
                key="board_target",
            )
            reason = st.text_input(
                t("board.reason"), key="board_reason", help=t("board.reason_help")
            )
            submitted = st.form_submit_button(
                t("board.assign"), type="primary", key="board_assign"
            )
        if submitted:
            if not picked or target is None:
                st.warning(t("board.pick_first"))
            else:
                try:
                    data = validated(
                        case_moves.ManualAssignment,
                        cases=[
                            {"case_id": cid, "version": by_id[cid]["version"]}
                            for cid in picked
                        ],
                        collector_id=target,
                        reason=reason,
                    )
                except RecovaError as error:
                    ui.show_error(error)
                else:
                    result = run_service(
                        case_moves.assign_cases, actor=actor, data=data
                    )
                    if result is not None:
                        flash(
                            t(
                                "board.assigned",
                                count=len(result.moved),
                                collector=collectors[target].username,
                            )
                        )

        if source != UNASSIGNED and rows:
            st.subheader(t("board.switch_title"))
            st.caption(t("board.switch_help"))
            with st.form("board_switch_form"):
                switch_case = st.selectbox(
                    t("board.switch_case"),
                    list(by_id),
                    format_func=lambda cid: by_id[cid]["case_no"],
                    key="board_switch_case",
                )
                switch_target = st.selectbox(
                    t("board.switch_target"),
                    [AUTO, *targets],
                    format_func=lambda uid: (
                        t("board.switch_auto") if uid == AUTO else collector_label(uid)
                    ),
                    key="board_switch_target",
                )
                switch_reason = st.text_input(
                    t("board.reason"), key="board_switch_reason"
                )
                switched = st.form_submit_button(t("board.switch"), key="board_switch")
            if switched:
                try:
                    data = validated(
                        case_moves.SwitchRequest,
                        case={
                            "case_id": switch_case,
                            "version": by_id[switch_case]["version"],
                        },
                        reason=switch_reason,
                        collector_id=switch_target or None,
                    )
                except RecovaError as error:
                    ui.show_error(error)
                else:
                    result = run_service(
                        case_moves.switch_collector, actor=actor, data=data
                    )
                    if result is not None:
                        case_no, username = result.moved[0]
                        flash(t("board.switched", case_no=case_no, collector=username))
            history = ui.call(board.case_history, actor=actor, case_id=switch_case)
            if history:
                with st.expander(
                    t("board.history", case_no=by_id[switch_case]["case_no"])
                ):
                    st.dataframe(
                        pl.DataFrame(
                            {
                                t("board.history.at"): [
                                    str(h["at"])[:16] for h in history
                                ],
                                t("board.history.kind"): [
                                    label("event", h["kind"]) for h in history
                                ],
                                t("board.history.by"): [
                                    h["actor_name"] or "" for h in history
                                ],
                                t("board.history.from"): [
                                    h["from_collector"] or "" for h in history
                                ],
                                t("board.history.to"): [
                                    h["to_collector"] or "" for h in history
                                ],
                                t("board.reason"): [h["reason"] or "" for h in history],
                            }
                        ),
                        hide_index=True,
                        width="stretch",
                    )

if not is_manager:
    st.stop()

# Automatic assignment: a dry run first, then the same plan applied.
with tabs["auto"]:
    st.caption(t("board.auto_help"))
    if view.unassigned_by_reason:
        st.dataframe(
            pl.DataFrame(
                {
                    t("board.reason_column"): [
                        label("reason", code) for code in view.unassigned_by_reason
                    ],
                    t("board.cases"): list(view.unassigned_by_reason.values()),
                }
            ),
            hide_index=True,
            key="board_reasons",
        )
    left, right = st.columns(2)
    if left.button(
        t("board.preview"), key="board_preview", disabled=view.unassigned_total == 0
    ):
        plan = ui.call(
            assignment.auto_assign, actor=actor, creditor=creditor_name, dry_run=True
        )
        if plan is not None:
            st.session_state["board_plan"] = plan
    plan = st.session_state.get("board_plan")
    if plan is not None:
        st.subheader(t("board.preview_title"))
        columns = st.columns(2)
        columns[0].metric(t("board.metric.to_assign"), len(plan.assigned))
        columns[1].metric(t("board.metric.left"), len(plan.unassigned))
        gaining = [c for c in plan.collectors if c.new_cases]
        if gaining:
            st.dataframe(
                pl.DataFrame(
                    {
                        t("board.collector"): [c.username for c in gaining],
                        t("board.new_cases"): [c.new_cases for c in gaining],
                        t("board.new_balance"): [money(c.new_balance) for c in gaining],
                        t("board.open_cases"): [c.open_cases for c in gaining],
                        t("board.capacity"): [c.capacity for c in gaining],
                    }
                ),
                hide_index=True,
                width="stretch",
                key="board_plan_table",
            )
        if plan.unassigned:
            st.dataframe(
                pl.DataFrame(
                    {
                        t("field.case_no"): [c.case_no for c in plan.unassigned[:200]],
                        t("field.province"): [
                            c.province or "" for c in plan.unassigned[:200]
                        ],
                        t("board.segment"): [
                            label("segment", c.segment) for c in plan.unassigned[:200]
                        ],
                        t("board.reason_column"): [
                            label("reason", c.reason) for c in plan.unassigned[:200]
                        ],
                    }
                ),
                hide_index=True,
                width="stretch",
                key="board_plan_left",
            )
        if right.button(
            t("board.apply"),
            type="primary",
            key="board_apply",
            disabled=not plan.assigned,
        ):
            result = ui.call(
                assignment.auto_assign,
                actor=actor,
                creditor=creditor_name,
                expected_fingerprint=plan.fingerprint,
            )
            st.session_state.pop("board_plan", None)
            if result is not None:
                flash(
                    t(
                        "board.applied",
                        assigned=len(result.assigned),
                        left=len(result.unassigned),
                    )
                )

# Recall of a batch on its recall date.
with tabs["recall"]:
    if not view.recall_due:
        st.info(t("board.no_recall"))
    else:
        due = {row["id"]: row for row in view.recall_due}
        with st.form("board_recall_form"):
            batch_id = st.selectbox(
                t("board.recall_batch"),
                list(due),
                format_func=lambda bid: t(
                    "board.recall_option",
                    batch=due[bid]["name"],
                    creditor=due[bid]["creditor"],
                    date=due[bid]["recall_date"],
                    count=due[bid]["open_cases"],
                ),
                key="board_recall_batch",
            )
            recall_reason = st.text_input(t("board.reason"), key="board_recall_reason")
            recalled = st.form_submit_button(t("board.recall"), key="board_recall")
        if recalled:
            result = run_service(
                case_moves.recall_batch,
                actor=actor,
                batch_id=batch_id,
                reason=recall_reason,
            )
            if result is not None:
                flash(
                    t("board.recalled", batch=result.batch, count=len(result.recalled))
                )

# Collectors' team, regions, skill, capacity and state; moving a paused one's cases.
with tabs["collectors"]:
    if not collectors:
        st.info(t("board.no_collectors"))
        st.stop()
    chosen = st.selectbox(
        t("board.collector"),
        list(collectors),
        format_func=collector_label,
        key="board_collector",
    )
    person = collectors[chosen]
    with st.form(f"board_collector_form_{chosen}"):
        left, right = st.columns(2)
        team = left.text_input(
            t("board.team"),
            value=person.team or "",
            key="board_edit_team",
            help=t("users.team_help"),
        )
        regions = right.text_input(
            t("board.regions"),
            value=", ".join(person.regions),
            key="board_edit_regions",
            help=t("users.regions_help"),
        )
        skill = left.number_input(
            t("board.skill"), 1, 3, person.skill, key="board_edit_skill"
        )
        capacity = right.number_input(
            t("board.capacity"),
            0,
            1_000_000,
            person.capacity,
            key="board_edit_capacity",
        )
        active = left.checkbox(
            t("board.active"), value=person.is_active, key="board_edit_active"
        )
        paused = right.checkbox(
            t("board.paused"),
            value=person.is_paused,
            key="board_edit_paused",
            help=t("board.paused_help"),
        )
        saved = st.form_submit_button(
            t("board.save_collector"), type="primary", key="board_save_collector"
        )
    if saved:
        try:
            change = validated(
                board.CollectorChange,
                user_id=chosen,
                version=person.version,
                team=team.strip(),
                clear_team=not team.strip(),
                regions=regions.replace("，", ",").split(","),
                skill=skill,
                capacity=capacity,
                is_active=active,
                is_paused=paused,
            )
        except RecovaError as error:
            ui.show_error(error)
        else:
            if run_service(board.change_collector, actor=actor, data=change):
                flash(t("board.collector_saved", username=person.username))

    if (person.is_paused or not person.is_active) and person.open_cases:
        st.subheader(t("board.move_title", count=person.open_cases))
        with st.form(f"board_move_open_{chosen}"):
            move_target = st.selectbox(
                t("board.move_target"),
                [
                    AUTO,
                    *[
                        uid
                        for uid, c in collectors.items()
                        if uid != chosen and c.is_active and not c.is_paused
                    ],
                ],
                format_func=lambda uid: (
                    t("board.move_auto") if uid == AUTO else collector_label(uid)
                ),
                key="board_move_target",
            )
            move_reason = st.text_input(t("board.reason"), key="board_move_reason")
            moved = st.form_submit_button(t("board.move"), key="board_move")
        if moved:
            try:
                data = validated(
                    case_moves.MoveOpenCases,
                    collector_id=chosen,
                    reason=move_reason,
                    to_collector_id=move_target or None,
                )
            except RecovaError as error:
                ui.show_error(error)
            else:
                result = run_service(case_moves.move_open_cases, actor=actor, data=data)
                if result is not None:
                    flash(
                        t("board.moved", moved=len(result.moved), left=len(result.left))
                    )
