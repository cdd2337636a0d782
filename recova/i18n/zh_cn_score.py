"""Messages of the score pages and services (zh_cn)."""

MESSAGES: dict[str, str] = {}
