"""Messages of the kpi pages and services (en)."""

MESSAGES: dict[str, str] = {}
