"""Fixtures of the webhook tests: an admin and a way to register endpoints."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ticketing.core.models import Agent, Role, WebhookEndpoint
from ticketing.desk.webhooks import endpoints

AddEndpoint = Callable[..., tuple[WebhookEndpoint, str]]


@pytest.fixture
def admin(make) -> Agent:
    return make.agent(role=Role.ADMIN, name="Admin")


@pytest.fixture
def add_endpoint(session, cipher, admin) -> AddEndpoint:
    """Register an endpoint (committed), returning it and its secret."""

    def add(url: str = "https://shop.example/hooks", events: tuple[str, ...] = ("all",),
            **kwargs: object) -> tuple[WebhookEndpoint, str]:
        endpoint, secret = endpoints.add_endpoint(session, cipher=cipher, url=url, events=events,
                                                  by_agent_id=admin.id, **kwargs)
        session.commit()
        return endpoint, secret

    return add
