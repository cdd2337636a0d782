"""Users and teams, for admins: add, edit role and team, deactivate, reset password."""

import polars as pl
import streamlit as st

from db.models import ROLES
from recova import ui
from recova.errors import RecovaError
from services import auth, users

actor = ui.require_actor()
t = ui.t

st.title(t("users.title"))

with ui.db_session() as session:
    people = users.list_users(session=session, actor=actor)
    teams = {team.id: team.name for team in users.list_teams(session=session)}

table = pl.DataFrame(
    {
        t("users.username"): [u.username for u in people],
        t("users.display_name"): [u.display_name for u in people],
        t("users.role"): [t(f"role.{u.role}") for u in people],
        t("users.team"): [teams.get(u.team_id, "") for u in people],
        t("users.regions"): [
            ", ".join(u.regions or []) or t("users.all_regions") for u in people
        ],
        t("users.skill"): [u.skill for u in people],
        t("users.capacity"): [u.capacity for u in people],
        t("users.active"): [u.is_active for u in people],
    }
)
st.dataframe(table, hide_index=True, width="stretch")

flash = st.session_state.pop("users_flash", None)
if flash:
    st.success(flash)

add_tab, edit_tab = st.tabs([t("users.add"), t("users.edit")])

with add_tab, st.form("add_user", clear_on_submit=True):
    left, right = st.columns(2)
    username = left.text_input(t("users.username"), key="add_username")
    display_name = right.text_input(t("users.display_name"), key="add_display")
    role = left.selectbox(
        t("users.role"),
        ROLES,
        index=ROLES.index("collector"),
        format_func=lambda r: t(f"role.{r}"),
        key="add_role",
    )
    team = right.text_input(t("users.team"), key="add_team", help=t("users.team_help"))
    regions = left.text_input(
        t("users.regions"), key="add_regions", help=t("users.regions_help")
    )
    skill = right.number_input(t("users.skill"), 1, 3, 1, key="add_skill")
    capacity = left.number_input(
        t("users.capacity"), 0, 1_000_000, 500, key="add_capacity"
    )
    password = right.text_input(
        t("users.password"),
        type="password",
        key="add_password",
        help=t("setup.password_help", minimum=auth.MIN_PASSWORD_LENGTH),
    )
    if st.form_submit_button(t("users.add_submit"), type="primary"):
        try:
            data = users.validated(
                users.NewUser,
                username=username,
                password=password,
                role=role,
                display_name=display_name,
                team=team or None,
                regions=regions.replace("，", ",").split(","),
                skill=skill,
                capacity=capacity,
            )
            with ui.db_session() as session:
                users.add_user(session=session, actor=actor, data=data)
        except RecovaError as error:
            ui.show_error(error)
        else:
            st.session_state["users_flash"] = t("users.added", username=data.username)
            st.rerun()

with edit_tab:
    if not people:
        st.stop()
    picked = st.selectbox(
        t("users.pick"), people, format_func=lambda u: u.username, key="edit_user"
    )
    with st.form(f"edit_user_{picked.id}"):
        left, right = st.columns(2)
        role = left.selectbox(
            t("users.role"),
            ROLES,
            index=ROLES.index(picked.role),
            format_func=lambda r: t(f"role.{r}"),
            key="edit_role",
        )
        team = right.text_input(
            t("users.team"), value=teams.get(picked.team_id, ""), key="edit_team"
        )
        regions = left.text_input(
            t("users.regions"),
            value=", ".join(picked.regions or []),
            key="edit_regions",
            help=t("users.regions_help"),
        )
        skill = right.number_input(
            t("users.skill"), 1, 3, picked.skill, key="edit_skill"
        )
        capacity = left.number_input(
            t("users.capacity"), 0, 1_000_000, picked.capacity, key="edit_capacity"
        )
        active = right.checkbox(
            t("users.active"), value=picked.is_active, key="edit_active"
        )
        if st.form_submit_button(t("users.save"), type="primary"):
            try:
                change = users.validated(
                    users.UserChange,
                    user_id=picked.id,
                    version=picked.version,
                    role=role,
                    team=team.strip(),
                    clear_team=not team.strip(),
                    regions=regions.replace("，", ",").split(","),
                    skill=skill,
                    capacity=capacity,
                    is_active=active,
                )
                with ui.db_session() as session:
                    users.change_user(session=session, actor=actor, data=change)
            except RecovaError as error:
                ui.show_error(error)
            else:
                st.success(t("users.saved", username=picked.username))
                st.rerun()

    with st.form(f"reset_{picked.id}", clear_on_submit=True):
        new_password = st.text_input(
            t("users.new_password"), type="password", key="reset_password"
        )
        if st.form_submit_button(t("users.reset")):
            try:
                with ui.db_session() as session:
                    users.reset_password(
                        session=session,
                        actor=actor,
                        user_id=picked.id,
                        password=new_password,
                    )
            except RecovaError as error:
                ui.show_error(error)
            else:
                st.success(t("users.reset_done", username=picked.username))
