"""Business rules, authorization and audit. Never imports streamlit."""
