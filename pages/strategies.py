"""Segment rules and collection strategies, for admins: each save is a new version."""

import pandas as pd
import polars as pl
import streamlit as st

from recova import ui
from recova.errors import RecovaError
from services import segments
from services.users import validated

actor = ui.require_actor()
t = ui.t
NEW = "__new__"


def saved_by(version) -> str:
    if version.version == 0:
        return t("strategies.defaults")
    return t(
        "strategies.saved_by",
        version=version.version,
        username=version.created_by or "—",
        at=str(version.created_at)[:16],
    )


st.title(t("strategies.title"))
st.caption(t("strategies.caption"))
if "strategies_flash" in st.session_state:
    st.success(st.session_state.pop("strategies_flash"))

with ui.db_session() as session:
    rule_set = segments.current_rule_set(session)
    strategies = segments.current_strategies(session)

# Segment rules: one row per condition; rows with the same rule number form a rule.
st.subheader(t("strategies.rules"))
st.caption(saved_by(rule_set))
st.caption(t("strategies.rules_help"))
rules_frame = pd.DataFrame(
    segments.rules_to_table(rule_set.rules),
    columns=["rule", "segment", "strategy", "match", "field", "op", "value"],
)
edited_rules = st.data_editor(
    rules_frame,
    key=f"strategies_rules_{rule_set.version}",
    num_rows="dynamic",
    hide_index=True,
    column_config={
        "rule": st.column_config.NumberColumn(
            t("strategies.rule"), min_value=1, step=1, required=True
        ),
        "segment": st.column_config.TextColumn(t("strategies.segment"), required=True),
        "strategy": st.column_config.SelectboxColumn(
            t("strategies.strategy"), options=list(strategies), required=True
        ),
        "match": st.column_config.SelectboxColumn(
            t("strategies.match"),
            options=["all", "any"],
            required=True,
            help=t("strategies.match_help"),
        ),
        "field": st.column_config.SelectboxColumn(
            t("strategies.field"),
            options=[*segments.NUMERIC_FIELDS, *segments.LIST_FIELDS],
        ),
        "op": st.column_config.SelectboxColumn(
            t("strategies.op"),
            options=[*segments.NUMERIC_OPERATORS, *segments.LIST_OPERATORS],
            help=t("strategies.op_help"),
        ),
        "value": st.column_config.TextColumn(
            t("strategies.value"), help=t("strategies.value_help")
        ),
    },
    width="stretch",
)
rules_note = st.text_input(t("strategies.note"), key="strategies_rules_note")
if st.button(t("strategies.save_rules"), type="primary", key="strategies_save_rules"):
    rows = edited_rules.astype(object).where(edited_rules.notna(), None)
    try:
        data = validated(
            segments.RuleSetInput,
            rules=segments.rules_from_table(rows.to_dict("records")),
            note=rules_note.strip() or None,
        )
        with ui.db_session() as session:
            saved = segments.save_rule_set(session=session, actor=actor, data=data)
    except RecovaError as error:
        ui.show_error(error)
    else:
        st.session_state["strategies_flash"] = t(
            "strategies.rules_saved", version=saved.version
        )
        st.rerun()

with st.expander(t("strategies.history")):
    history = ui.call(segments.rule_set_history, actor=actor) or []
    if history:
        st.dataframe(
            pl.DataFrame(
                {
                    t("strategies.version"): [item.version for item in history],
                    t("strategies.by"): [item.created_by or "" for item in history],
                    t("strategies.at"): [str(item.created_at)[:16] for item in history],
                    t("strategies.note"): [item.note or "" for item in history],
                    t("strategies.rules"): [
                        " → ".join(rule.segment for rule in item.rules)
                        for item in history
                    ],
                }
            ),
            hide_index=True,
            width="stretch",
        )
    else:
        st.write(t("strategies.defaults"))

st.divider()

# Strategies: the steps from assignment on, the first-contact time and the skill.
st.subheader(t("strategies.strategies"))
code = st.selectbox(
    t("strategies.pick"),
    [*strategies, NEW],
    format_func=lambda value: (
        t("strategies.new") if value == NEW else f"{value} · {strategies[value].name}"
    ),
    key="strategies_pick",
)
current = strategies.get(code)
if current is not None:
    st.caption(saved_by(current))
steps_frame = pd.DataFrame(
    [step.model_dump() for step in current.steps] if current else [],
    columns=["day", "channel", "target", "every_days", "escalation"],
)
with st.form(f"strategies_form_{code}"):
    left, right = st.columns(2)
    new_code = (
        left.text_input(
            t("strategies.code"), key="strategies_code", help=t("strategies.code_help")
        )
        if code == NEW
        else code
    )
    name = right.text_input(
        t("strategies.name"),
        value=current.name if current else "",
        key="strategies_name",
    )
    min_skill = left.number_input(
        t("strategies.min_skill"),
        1,
        3,
        current.min_skill if current else 1,
        key="strategies_min_skill",
        help=t("strategies.min_skill_help"),
    )
    hours = right.number_input(
        t("strategies.first_contact_hours"),
        1,
        720,
        current.first_contact_hours if current else 24,
        key="strategies_hours",
    )
    steps = st.data_editor(
        steps_frame,
        key=f"strategies_steps_{code}",
        num_rows="dynamic",
        hide_index=True,
        column_config={
            "day": st.column_config.NumberColumn(
                t("strategies.day"), min_value=0, step=1, required=True
            ),
            "channel": st.column_config.SelectboxColumn(
                t("strategies.channel"),
                options=list(segments.CHANNELS),
                required=True,
            ),
            "target": st.column_config.SelectboxColumn(
                t("strategies.target"),
                options=list(segments.TARGETS),
                required=True,
            ),
            "every_days": st.column_config.NumberColumn(
                t("strategies.every_days"),
                min_value=1,
                step=1,
                help=t("strategies.every_days_help"),
            ),
            "escalation": st.column_config.SelectboxColumn(
                t("strategies.escalation"),
                options=list(segments.ESCALATIONS),
                help=t("strategies.escalation_help"),
            ),
        },
        width="stretch",
    )
    strategy_note = st.text_input(t("strategies.note"), key="strategies_note")
    submitted = st.form_submit_button(
        t("strategies.save"), type="primary", key="strategies_save"
    )
if submitted:
    step_rows = steps.astype(object).where(steps.notna(), None).to_dict("records")
    step_rows = [
        {key: value for key, value in row.items() if value is not None}
        for row in step_rows
    ]
    try:
        data = validated(
            segments.StrategyInput,
            code=(new_code or "").strip(),
            name=name,
            min_skill=min_skill,
            first_contact_hours=hours,
            steps=step_rows,
            note=strategy_note.strip() or None,
        )
        with ui.db_session() as session:
            saved = segments.save_strategy(session=session, actor=actor, data=data)
    except RecovaError as error:
        ui.show_error(error)
    else:
        st.session_state["strategies_flash"] = t(
            "strategies.strategy_saved", code=saved.code, version=saved.version
        )
        st.rerun()

st.divider()

# Classify every open case again with the rules in force.
st.subheader(t("strategies.classify_title"))
st.caption(t("strategies.classify_help"))
if st.button(t("strategies.classify"), key="strategies_classify"):
    result = ui.call(segments.classify_open_cases, actor=actor)
    if result is not None:
        st.success(
            t("strategies.classified", changed=result.changed, moved=result.moved)
        )
