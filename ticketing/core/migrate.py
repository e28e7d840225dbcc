"""Bring a database to the newest schema with Alembic: ``python -m ticketing.core.migrate``."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

from ticketing.core.settings import load_settings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
log = logging.getLogger(__name__)


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str | None = None) -> None:
    """Apply every pending migration; a no-op on an up-to-date database."""
    url = database_url or load_settings().database_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    upgrade()
    log.info("database is at the newest schema")


if __name__ == "__main__":
    main()
