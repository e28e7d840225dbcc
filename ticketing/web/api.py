"""The JSON API's conventions, in one place: the error body and how routes declare errors.

Every refused request under ``/api/v1`` answers ``{"error": {"code", "message"}}`` with the
message in the caller's language: typed errors (``ticketing.core.errors``) and request
validation alike, so a script handles one shape and the OpenAPI document states it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ticketing.core.errors import ValidationError
from ticketing.core.i18n import Text
from ticketing.web.language import language_for
from ticketing.web.texts import ui

PREFIX = "/api/v1"
INVALID = Text("输入不正确：{fields}", "Invalid input: {fields}")
DESCRIPTIONS = {
    401: "Not signed in, an ended session, or a token without the needed scope",
    403: "Not allowed for this role, or a missing or wrong CSRF token",
    404: "No such thing, or not one this person may see",
    409: "In conflict with the ticket's current state (e.g. already claimed)",
    422: "A field is missing or not one of the allowed values",
    429: "Too many failed sign-ins: locked for 15 minutes",
}


# a database id as the API accepts it: larger ones cannot exist, so they are refused as input
Id = Annotated[int, Field(ge=1, le=2_147_483_647)]


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    """Every refused request: a stable code and a sentence in the caller's language."""

    error: ErrorBody


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the errors a route may answer with (401 and 403 always)."""
    return {status: {"model": ErrorOut, "description": DESCRIPTIONS[status]}
            for status in sorted({401, 403, 422, *statuses})}


def body_of(*models: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI extras of a write: its body is one of ``models`` as JSON or as a form; a form
    post from a page without scripts is answered with a 303 back to the page."""
    schema = models[0].model_json_schema() if len(models) == 1 else {
        "oneOf": [m.model_json_schema() for m in models]}
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": schema},
        "application/x-www-form-urlencoded": {"schema": schema},
    }}, "responses": {"303": {"description": "A form post from a page: back to the page"}}}


class InvalidInput(ValidationError):
    """The request's fields did not validate; the message names them."""

    code = "invalid_input"

    def __init__(self, fields: list[str]) -> None:
        super().__init__("invalid: " + ", ".join(fields), fields=fields)
        self.fields = fields

    def text(self, language: str = "en") -> str:
        return ui("ticket.invalid_fields", language).format(fields=", ".join(self.fields))


async def submitted(request: Request) -> dict[str, Any]:
    """The request body as a dict, from JSON or a form (the page's forms post here too)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            data = await request.json()
        except ValueError:
            raise InvalidInput(["body"]) from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise InvalidInput(["body"])
        return data
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        return {key: value for key, value in form.items()
                if isinstance(value, str) and key != "csrf_token"}
    if (await request.body()).strip():
        raise InvalidInput(["content-type"])
    return {}


Submitted = Annotated[dict[str, Any], Depends(submitted)]


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request", "").lower() == "true"


def is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data"))


def install(app: FastAPI) -> None:
    """Request-validation failures in the same body; every 422 in the document says so."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        fields = sorted({".".join(str(part) for part in e.get("loc", ())[1:]) or "body"
                         for e in error.errors()})
        message = INVALID.get(language_for(request), fields=", ".join(fields))
        return JSONResponse({"error": {"code": "invalid_input", "message": message}},
                            status_code=422)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = FastAPI.openapi(app)
        ref = {"$ref": "#/components/schemas/ErrorOut"}
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault("ErrorBody", ErrorBody.model_json_schema())
        components.setdefault("ErrorOut", {
            "title": "ErrorOut", "type": "object", "required": ["error"],
            "properties": {"error": {"$ref": "#/components/schemas/ErrorBody"}}})
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                answer = operation.get("responses", {}).get("422")
                if answer is not None:
                    answer["content"] = {"application/json": {"schema": ref}}
                    answer["description"] = DESCRIPTIONS[422]
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
