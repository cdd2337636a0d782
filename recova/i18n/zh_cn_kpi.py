"""Messages of the kpi pages and services (zh_cn)."""

MESSAGES: dict[str, str] = {}
