"""Process-wide configuration, read once from the environment."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration from `RECOVA_*` variables and `DATABASE_URL`."""

    model_config = SettingsConfigDict(env_prefix="RECOVA_", extra="ignore")

    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    home: Path = Path(".recova")
    secret: str | None = None
    timezone: str = "Asia/Shanghai"
    default_language: str = "zh-CN"
    upload_limit_mb: int = 200
    session_idle_minutes: int = 60
    session_max_hours: int = 12
    compliance_profile: str = "cn"
    # Folder for case attachments (RECOVA_ATTACHMENT_DIR); unset keeps them in the
    # database.
    attachment_dir: Path | None = None

    @property
    def upload_limit_bytes(self) -> int:
        return self.upload_limit_mb * 1024 * 1024


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
