"""Recova's Streamlit entry point: login, then the pages the user's role may open."""

import streamlit as st

from recova import ui
from recova.i18n import LANGUAGES
from services import auth, users

st.set_page_config(page_title="Recova", page_icon="📁", layout="wide")

PAGES = {
    "cases": ("pages/cases.py", "nav.cases", ":material/folder_open:"),
    "intake": ("pages/intake.py", "nav.intake", ":material/upload_file:"),
    "users": ("pages/users.py", "nav.users", ":material/group:"),
    "account": ("pages/account.py", "nav.account", ":material/settings:"),
    "payments": ("pages/payments.py", "nav.payments", ":material/payments:"),
    "approvals": ("pages/approvals.py", "nav.approvals", ":material/approval:"),
    "audit": ("pages/audit.py", "nav.audit", ":material/policy:"),
    "board": ("pages/board.py", "nav.board", ":material/assignment_ind:"),
    "strategies": ("pages/strategies.py", "nav.strategies", ":material/rule:"),
    "queue": ("pages/queue.py", "nav.queue", ":material/checklist:"),
    "case_file": ("pages/case_file.py", "nav.case_file", ":material/badge:"),
    "compliance": ("pages/compliance.py", "nav.compliance", ":material/gavel:"),
    "kpi": ("pages/kpi.py", "nav.kpi", ":material/monitoring:"),
    "models": ("pages/models.py", "nav.models", ":material/model_training:"),
}

ROLE_PAGES = {
    "admin": [
        "kpi",
        "cases",
        "case_file",
        "intake",
        "board",
        "strategies",
        "compliance",
        "models",
        "users",
        "approvals",
        "audit",
        "account",
    ],
    "manager": [
        "kpi",
        "cases",
        "case_file",
        "intake",
        "board",
        "approvals",
        "models",
        "account",
    ],
    "team_lead": [
        "queue",
        "kpi",
        "cases",
        "case_file",
        "board",
        "approvals",
        "account",
    ],
    "collector": ["queue", "case_file", "kpi", "cases", "approvals", "account"],
    "finance": ["cases", "payments", "kpi", "account"],
    "auditor": ["kpi", "cases", "case_file", "audit", "account"],
}


def _language_picker(key: str) -> None:
    current = ui.language()
    choice = st.selectbox(
        ui.t("app.language"),
        list(LANGUAGES),
        index=list(LANGUAGES).index(current),
        format_func=LANGUAGES.get,
        key=key,
    )
    if choice == current:
        return
    actor = st.session_state.get("actor")
    if actor is None:
        st.session_state[ui.LANGUAGE_KEY] = choice
    else:
        st.session_state["actor"] = (
            ui.call(users.set_language, actor=actor, language=choice) or actor
        )
    st.rerun()


def _sidebar(actor) -> None:
    with st.sidebar:
        st.markdown(f"**{actor.username}** · {ui.t('role.' + actor.role)}")
        _language_picker("sidebar_language")
        if st.button(ui.t("app.logout"), key="logout", icon=":material/logout:"):
            with ui.db_session() as session:
                auth.logout(session=session, token=st.session_state.get(ui.TOKEN_KEY))
            for key in (ui.TOKEN_KEY, "actor"):
                st.session_state.pop(key, None)
            st.rerun()


def main() -> None:
    actor = ui.current_actor()
    if actor is None:
        with st.sidebar:
            _language_picker("login_language")
        with ui.db_session() as session:
            first_run = auth.needs_first_admin(session=session)
        page = "pages/setup.py" if first_run else "pages/login.py"
        title = ui.t("nav.setup" if first_run else "nav.login")
        st.navigation([st.Page(page, title=title)], position="hidden").run()
        return

    _sidebar(actor)
    pages = [
        st.Page(
            PAGES[name][0],
            title=ui.t(PAGES[name][1]),
            icon=PAGES[name][2],
            url_path=name,
        )
        for name in ROLE_PAGES[actor.role]
    ]
    st.navigation(pages).run()


main()
