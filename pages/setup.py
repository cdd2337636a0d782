"""First-run setup: the install has no admin yet, so the first one is created here."""

import streamlit as st

from recova import ui
from recova.errors import RecovaError
from services import auth, users

st.title(ui.t("setup.title"))
st.write(ui.t("setup.intro"))

with st.form("setup"):
    username = st.text_input(ui.t("setup.username"), key="setup_username")
    display_name = st.text_input(ui.t("setup.display_name"), key="setup_display")
    password = st.text_input(
        ui.t("setup.password"),
        type="password",
        key="setup_password",
        help=ui.t("setup.password_help", minimum=auth.MIN_PASSWORD_LENGTH),
    )
    confirm = st.text_input(ui.t("setup.confirm"), type="password", key="setup_confirm")
    submitted = st.form_submit_button(ui.t("setup.submit"), type="primary")

if submitted:
    if password != confirm:
        st.error(ui.t("setup.mismatch"))
        st.stop()
    try:
        data = users.validated(
            users.NewUser,
            username=username,
            password=password,
            role="admin",
            display_name=display_name,
            language=ui.language(),
        )
        with ui.db_session() as session:
            users.add_user(session=session, actor=None, data=data)
        with ui.db_session() as session:
            result = auth.login(
                session=session, username=data.username, password=password
            )
    except RecovaError as error:
        ui.show_error(error)
    else:
        st.session_state[ui.TOKEN_KEY] = result.token
        st.session_state["actor"] = result.actor
        st.rerun()
