"""Messages of the followup pages and services (zh_cn)."""

MESSAGES: dict[str, str] = {}
