"""Which language a desk page speaks: the agent's choice, else what the browser asks for."""

from __future__ import annotations

from fastapi import Request

from ticketing.core.i18n import normalize_language


def language_for(request: Request, chosen: str | None = None) -> str:
    """``chosen`` (the signed-in agent's setting), else ``?lang=``, else Accept-Language."""
    chosen = chosen or getattr(request.state, "language", None) or request.query_params.get("lang")
    if chosen:
        return normalize_language(chosen)
    accept = request.headers.get("accept-language", "")
    return normalize_language(accept.split(",")[0].strip() or "zh")
