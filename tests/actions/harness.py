"""Run a real action against a tracker built from a JSON fixture, and read what it said.

Fixtures live in ``tests/actions/trackers/*.json`` (Rasa's tracker state as the action server
receives it). :func:`tracker` loads one and overrides what a test cares about; :func:`run`
runs the action as the action server would and returns its messages and events.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "trackers"


def load_domain() -> dict[str, Any]:
    """bot/domain/*.yml merged the way Rasa merges a domain directory (enough for actions)."""
    merged: dict[str, Any] = {}
    for path in sorted((ROOT / "bot" / "domain").glob("*.yml")):
        part = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for key, value in part.items():
            if isinstance(value, dict):
                merged.setdefault(key, {}).update(value)
            elif isinstance(value, list):
                merged.setdefault(key, []).extend(value)
            else:
                merged[key] = value
    return merged


def tracker(fixture: str = "base", *, sender_id: str | None = None,
            slots: dict[str, Any] | None = None, text: str | None = None,
            intent: str | None = None, entities: list[dict[str, Any]] | None = None,
            events: list[dict[str, Any]] | None = None, active_loop: str | None = None,
            requested_slot: str | None = None) -> Tracker:
    """A tracker from ``trackers/<fixture>.json`` with the given overrides.

    ``text``/``intent``/``entities`` replace the latest message and append it as a user event;
    entities may be given as ``{"entity": ..., "value": ...}`` dicts.
    """
    state = json.loads((FIXTURES / f"{fixture}.json").read_text(encoding="utf-8"))
    state = copy.deepcopy(state)
    if sender_id is not None:
        state["sender_id"] = sender_id
    state["slots"].update(slots or {})
    if requested_slot is not None:
        state["slots"]["requested_slot"] = requested_slot
    if events:
        state["events"].extend(events)
    if text is not None or intent is not None or entities is not None:
        message = {
            "text": text if text is not None else state["latest_message"].get("text", ""),
            "intent": {"name": intent or state["latest_message"]["intent"]["name"],
                       "confidence": 0.99},
            "entities": entities or [],
        }
        state["latest_message"] = message
        state["events"].append({"event": "user", "text": message["text"],
                                "timestamp": time.time(), "parse_data": message})
    if active_loop is not None:
        state["active_loop"] = {"name": active_loop}
    return Tracker.from_dict(state)


@dataclass
class Result:
    messages: list[dict[str, Any]]
    events: list[dict[str, Any]]

    @property
    def texts(self) -> list[str]:
        return [m["text"] for m in self.messages if m.get("text")]

    @property
    def text(self) -> str:
        return "\n".join(self.texts)

    @property
    def responses(self) -> list[str]:
        return [m["response"] for m in self.messages if m.get("response")]

    @property
    def buttons(self) -> list[dict[str, Any]]:
        return [b for m in self.messages for b in (m.get("buttons") or [])]

    @property
    def custom(self) -> list[dict[str, Any]]:
        return [m["custom"] for m in self.messages if m.get("custom")]

    def slots(self) -> dict[str, Any]:
        """The SlotSet events as a dict (last one wins)."""
        return {e["name"]: e["value"] for e in self.events if e.get("event") == "slot"}

    def event_types(self) -> list[str]:
        return [e["event"] for e in self.events]


def run(action: Action, state: Tracker, domain: dict[str, Any] | None = None) -> Result:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, state, domain if domain is not None else load_domain()))
    return Result(dispatcher.messages, list(events or []))
