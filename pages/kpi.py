"""Placeholder until the page is built."""

import streamlit as st

from recova import ui

st.title(ui.t("nav.kpi"))
