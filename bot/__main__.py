"""``python -m bot``: run the gateway (Telegram, web widget, health, metrics)."""

from __future__ import annotations

import asyncio
import logging

from bot.gateway.app import serve

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logging.getLogger("httpx").setLevel(logging.WARNING)
asyncio.run(serve())
