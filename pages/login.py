"""Login form."""

import streamlit as st

from recova import ui
from recova.errors import RecovaError
from services import auth

st.title(ui.t("login.title"))
if st.session_state.pop("session_expired", False):
    st.info(ui.t("login.expired"))

with st.form("login"):
    username = st.text_input(ui.t("login.username"), key="login_username")
    password = st.text_input(
        ui.t("login.password"), type="password", key="login_password"
    )
    submitted = st.form_submit_button(ui.t("login.submit"), type="primary")

if submitted:
    try:
        with ui.db_session() as session:
            result = auth.login(session=session, username=username, password=password)
    except RecovaError as error:
        ui.show_error(error)
    else:
        st.session_state[ui.TOKEN_KEY] = result.token
        st.session_state["actor"] = result.actor
        st.rerun()
