"""The user's own settings: language and password."""

import streamlit as st

from recova import ui
from recova.errors import RecovaError
from services import auth, users

actor = ui.require_actor()
t = ui.t

st.title(t("account.title"))
st.write(t("account.signed_in", username=actor.username, role=t(f"role.{actor.role}")))
st.caption(t("account.language_hint"))

with st.form("change_password", clear_on_submit=True):
    current = st.text_input(
        t("account.current_password"), type="password", key="account_current"
    )
    new = st.text_input(
        t("account.new_password"),
        type="password",
        key="account_new",
        help=t("setup.password_help", minimum=auth.MIN_PASSWORD_LENGTH),
    )
    confirm = st.text_input(t("setup.confirm"), type="password", key="account_confirm")
    if st.form_submit_button(t("account.change_password"), type="primary"):
        if new != confirm:
            st.error(t("setup.mismatch"))
        else:
            try:
                with ui.db_session() as session:
                    users.change_own_password(
                        session=session, actor=actor, current=current, new=new
                    )
            except RecovaError as error:
                ui.show_error(error)
            else:
                st.success(t("account.password_changed"))
