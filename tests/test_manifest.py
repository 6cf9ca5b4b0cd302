"""The Slack app manifest: valid against Slack's schema and in step with what the app registers."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema.validators import validator_for

from bot.adapters.slack.views import OPEN_FROM_MESSAGE_SHORTCUT
from handlers import build_router

REPO = Path(__file__).resolve().parent.parent
MANIFEST = REPO / "manifest.yaml"
# Slack's own schema, vendored (MIT) so a fresh clone validates offline
SCHEMA = REPO / "tests" / "data" / "slack-manifest-schema" / "manifest.schema.1.0.0.json"

EXPECTED_BOT_SCOPES = {
    "commands",          # /support, /tam
    "chat:write",        # chat.postMessage, chat.update, chat.postEphemeral
    "im:write",          # conversations.open for DMs
    "channels:history",  # message.channels (thread replies), conversations.history
    "groups:history",    # message.groups, conversations.history in private channels
    "reactions:read",    # reaction_added
    "im:history",        # a retried DM finds the message it may already have posted
}
EXPECTED_BOT_EVENTS = {"message.channels", "message.groups", "reaction_added",
                       "app_home_opened"}
EVENTS_PATH = "/slack/events"


def _manifest() -> dict[str, Any]:
    data = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{MANIFEST} is not a YAML mapping"
    return data


def _validator() -> Any:
    if not SCHEMA.is_file():
        pytest.fail(f"Slack manifest schema not found at {SCHEMA}; it is part of the "
                    "repository (tests/data/slack-manifest-schema/)", pytrace=False)
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _errors(manifest: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in _validator().iter_errors(manifest)]


def test_manifest_is_valid_against_slack_schema() -> None:
    manifest = _manifest()
    assert "_metadata" not in manifest, "classic (1.0.0) manifest: no _metadata needed"
    assert _errors(manifest) == []


@pytest.mark.parametrize("breakage", ["name_is_integer", "name_missing", "unknown_top_key"])
def test_invalid_manifest_is_rejected(breakage: str) -> None:
    """Negative control: the validator is live and catches a broken copy."""
    manifest = copy.deepcopy(_manifest())
    if breakage == "name_is_integer":
        manifest["display_information"]["name"] = 42
        expected = "display_information/name"
    elif breakage == "name_missing":
        del manifest["display_information"]["name"]
        expected = "display_information"
    else:
        manifest["display_infromation"] = {"name": "typo"}
        expected = "<root>"
    errors = _errors(manifest)
    assert errors, f"{breakage}: broken manifest passed validation"
    assert any(e.startswith(expected + ":") for e in errors), errors


def test_background_color_is_a_hex_colour() -> None:
    # the schema spells this constraint "regex" (not "pattern"), so no validator enforces it
    colour = _manifest()["display_information"]["background_color"]
    assert re.fullmatch(r"#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?", colour), colour


def test_slash_commands_match_router() -> None:
    declared = [c["command"] for c in _manifest()["features"]["slash_commands"]]
    assert len(declared) == len(set(declared)), declared
    assert set(declared) == {"/" + r for r in build_router().roots()}


def test_request_urls_point_at_slack_events() -> None:
    manifest = _manifest()
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is False, "HTTP mode: the URLs below are required"
    urls = {f"slash command {c['command']}": c.get("url")
            for c in manifest["features"]["slash_commands"]}
    urls["event_subscriptions"] = settings["event_subscriptions"].get("request_url")
    urls["interactivity"] = settings["interactivity"].get("request_url")
    bad = {where: url for where, url in urls.items()
           if not isinstance(url, str) or not url.endswith(EVENTS_PATH)}
    assert not bad, f"request URLs must end with {EVENTS_PATH}: {bad}"


def test_message_shortcut_matches_listener() -> None:
    shortcuts = _manifest()["features"]["shortcuts"]
    message = [s for s in shortcuts if s["type"] == "message"]
    assert [s["callback_id"] for s in message] == [OPEN_FROM_MESSAGE_SHORTCUT]


def test_bot_scopes_are_exactly_what_the_bot_uses() -> None:
    scopes = _manifest()["oauth_config"]["scopes"]
    assert set(scopes) == {"bot"}, "no user or optional scopes"
    assert len(scopes["bot"]) == len(set(scopes["bot"])), scopes["bot"]
    assert set(scopes["bot"]) == EXPECTED_BOT_SCOPES


def test_bot_events_are_exactly_what_the_bot_handles() -> None:
    events = _manifest()["settings"]["event_subscriptions"]
    assert set(events["bot_events"]) == EXPECTED_BOT_EVENTS
    assert "user_events" not in events
