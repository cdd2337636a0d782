"""Compliance settings for admins: profiles (built-ins read-only, copies that only
tighten), the profile of each creditor, and the result codes of the contact log."""

import polars as pl
import streamlit as st

from recova import ui
from recova.errors import RecovaError
from services import case_actions, cases, compliance
from services.users import validated

actor = ui.require_actor()
t = ui.t
lang = ui.language()
NEW = "__new__"
NUMBER_RULES = (
    "max_connected_calls_per_day",
    "max_unanswered_per_number_per_day",
    "max_calls_per_7_days",
    "quiet_days_after_conversation",
    "record_retention_years",
)
SWITCH_RULES = ("recording_required", "opt_out_required")


def flash(message: str) -> None:
    st.session_state["compliance_flash"] = message
    st.rerun()


def rule_text(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return t("compliance_page.yes") if value else t("compliance_page.no")
    return str(value)


st.title(t("compliance_page.title"))
if "compliance_flash" in st.session_state:
    st.success(st.session_state.pop("compliance_flash"))

profiles = ui.call(compliance.list_profiles, actor=actor)
if profiles is None:
    st.stop()
by_code = {p.code: p for p in profiles}
tab_profiles, tab_creditors, tab_codes = st.tabs(
    [
        t("compliance_page.tab.profiles"),
        t("compliance_page.tab.creditors"),
        t("compliance_page.tab.codes"),
    ]
)

# Profiles: one table of every rule, then the copy-and-tighten form.
with tab_profiles:
    rule_names = list(compliance.ProfileRules.model_fields)
    table = {
        t("compliance_page.rule"): [t(f"compliance_page.rule.{n}") for n in rule_names]
    }
    for profile in profiles:
        rules = profile.rules.model_dump()
        heading = profile.code + (
            " " + t("compliance_page.builtin") if profile.builtin else ""
        )
        table[heading] = [rule_text(rules[n]) for n in rule_names]
    st.dataframe(pl.DataFrame(table), hide_index=True, key="compliance_profiles")
    for profile in profiles:
        if profile.creditors:
            st.caption(
                t(
                    "compliance_page.used_by",
                    profile=profile.code,
                    creditors=", ".join(profile.creditors),
                )
            )

    st.subheader(t("compliance_page.edit_title"))
    st.caption(t("compliance_page.edit_help"))
    copies = [p.code for p in profiles if not p.builtin]
    target = st.selectbox(
        t("compliance_page.edit_pick"),
        [NEW, *copies],
        format_func=lambda c: t("compliance_page.new_copy") if c == NEW else c,
        key="compliance_edit_pick",
    )
    editing = by_code.get(target)
    builtins = [p.code for p in profiles if p.builtin]
    base_code = st.selectbox(
        t("compliance_page.based_on"),
        builtins,
        index=builtins.index(editing.based_on)
        if editing and editing.based_on in builtins
        else 0,
        key="compliance_base",
        disabled=editing is not None,
    )
    start = (editing or by_code[base_code]).rules
    with st.form(f"compliance_profile_form_{target}_{base_code}"):
        columns = st.columns(2)
        code = columns[0].text_input(
            t("compliance_page.code"),
            value=editing.code if editing else "",
            disabled=editing is not None,
            key="compliance_code",
        )
        name = columns[1].text_input(
            t("compliance_page.name"),
            value=editing.name if editing else "",
            key="compliance_name",
        )
        columns = st.columns(3)
        zone = columns[0].text_input(
            t("compliance_page.rule.timezone"), value=start.timezone, key="cp_zone"
        )
        window_start = columns[1].text_input(
            t("compliance_page.rule.window_start"),
            value=start.window_start,
            key="cp_start",
        )
        window_end = columns[2].text_input(
            t("compliance_page.rule.window_end"), value=start.window_end, key="cp_end"
        )
        numbers = {}
        columns = st.columns(len(NUMBER_RULES))
        for column, rule in zip(columns, NUMBER_RULES, strict=True):
            numbers[rule] = column.number_input(
                t(f"compliance_page.rule.{rule}"),
                min_value=0,
                value=getattr(start, rule),
                step=1,
                key=f"cp_{rule}",
            )
        switches = {
            rule: st.checkbox(
                t(f"compliance_page.rule.{rule}"),
                value=getattr(start, rule),
                key=f"cp_{rule}",
            )
            for rule in SWITCH_RULES
        }
        submitted = st.form_submit_button(
            t("compliance_page.save"), type="primary", key="compliance_save"
        )
    if submitted:
        rules = {
            "timezone": zone.strip(),
            "window_start": window_start.strip(),
            "window_end": window_end.strip(),
            **{
                rule: None if value is None else int(value)
                for rule, value in numbers.items()
            },
            **switches,
        }
        try:
            data = validated(
                compliance.ProfileInput,
                code=(editing.code if editing else code.strip()),
                name=name,
                based_on=editing.based_on if editing else base_code,
                rules=rules,
                expected_version=editing.version if editing else None,
            )
        except RecovaError as error:
            ui.show_error(error)
        else:
            saved = ui.call(compliance.save_profile, actor=actor, data=data)
            if saved is not None:
                flash(t("compliance_page.saved", profile=saved.code))

# The profile of each creditor.
with tab_creditors:
    creditors = ui.call(cases.list_creditors, actor=actor) or []
    if not creditors:
        st.info(t("compliance_page.no_creditors"))
    else:
        st.dataframe(
            pl.DataFrame(
                {
                    t("cases.creditor"): [c.name for c in creditors],
                    t("compliance_page.profile"): [
                        c.compliance_profile for c in creditors
                    ],
                }
            ),
            hide_index=True,
            key="compliance_creditors",
        )
        names = {c.id: c.name for c in creditors}
        with st.form("compliance_assign_form"):
            creditor_id = st.selectbox(
                t("cases.creditor"),
                list(names),
                format_func=names.get,
                key="compliance_creditor",
            )
            profile_code = st.selectbox(
                t("compliance_page.profile"), list(by_code), key="compliance_assign"
            )
            assigned = st.form_submit_button(
                t("compliance_page.assign"), key="compliance_assign_save"
            )
        if assigned:
            try:
                with ui.db_session() as session:
                    compliance.set_creditor_profile(
                        session=session,
                        actor=actor,
                        creditor_id=creditor_id,
                        profile_code=profile_code,
                    )
            except RecovaError as error:
                ui.show_error(error)
            else:
                flash(
                    t(
                        "compliance_page.assigned",
                        creditor=names[creditor_id],
                        profile=profile_code,
                    )
                )

# Result codes: the built-in ones and those admins added.
with tab_codes:
    codes = ui.call(compliance.list_result_codes, actor=actor, include_inactive=True)
    if codes:
        st.dataframe(
            pl.DataFrame(
                {
                    t("compliance_page.code"): [c.code for c in codes],
                    t("compliance_page.label_zh"): [c.label_zh for c in codes],
                    t("compliance_page.label_en"): [c.label_en for c in codes],
                    t("compliance_page.connected"): [
                        rule_text(c.connected) for c in codes
                    ],
                    t("compliance_page.right_party"): [
                        rule_text(c.right_party) for c in codes
                    ],
                    t("compliance_page.sets_flag"): [c.sets_flag or "" for c in codes],
                    t("compliance_page.builtin_column"): [
                        rule_text(c.builtin) for c in codes
                    ],
                }
            ),
            hide_index=True,
            key="compliance_codes",
        )
    with st.form("compliance_code_form", clear_on_submit=True):
        columns = st.columns(3)
        new_code = columns[0].text_input(
            t("compliance_page.code"),
            key="code_code",
            help=t("compliance_page.code_help"),
        )
        label_zh = columns[1].text_input(t("compliance_page.label_zh"), key="code_zh")
        label_en = columns[2].text_input(t("compliance_page.label_en"), key="code_en")
        columns = st.columns(3)
        connected = columns[0].checkbox(
            t("compliance_page.connected"), key="code_connected"
        )
        right_party = columns[1].checkbox(
            t("compliance_page.right_party"), key="code_right_party"
        )
        sets_flag = columns[2].selectbox(
            t("compliance_page.sets_flag"),
            [None, *case_actions.FLAGS],
            format_func=lambda f: (
                t("compliance_page.no_flag") if f is None else t(f"flag.{f}")
            ),
            key="code_flag",
        )
        added = st.form_submit_button(t("compliance_page.add_code"), key="code_add")
    if added:
        try:
            data = validated(
                compliance.ResultCodeInput,
                code=new_code.strip(),
                label_en=label_en.strip(),
                label_zh=label_zh.strip(),
                connected=connected,
                right_party=right_party,
                sets_flag=sets_flag,
            )
        except RecovaError as error:
            ui.show_error(error)
        else:
            row = ui.call(compliance.add_result_code, actor=actor, data=data)
            if row is not None:
                flash(t("compliance_page.code_added", code=row.code))
