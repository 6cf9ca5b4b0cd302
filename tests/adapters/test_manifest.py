"""The Slack app manifest: valid against Slack's schema and in step with what the app registers."""

from __future__ import annotations

import ast
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
from testkit.fake_slack import METHOD_SCOPES

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "manifest.yaml"
# Slack's own schema, vendored (MIT) so a fresh clone validates offline
SCHEMA = REPO / "tests" / "data" / "slack-manifest-schema" / "manifest.schema.1.0.0.json"

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
    """The manifest asks for the scopes of every Web API method the code calls (per Slack's
    method reference, `METHOD_SCOPES`), of every event it subscribes to, and `commands`;
    nothing more. The methods come from scanning the code (`slack_methods`), so a new call
    fails here until its scope is in the table and in the manifest. At run time the fake
    Slack holds the same line: its token has exactly the manifest's scopes and it refuses a
    method missing from the table, so every test that reaches it checks the calls it makes,
    including those no scan can see (Bolt's own)."""
    scopes = _manifest()["oauth_config"]["scopes"]
    assert set(scopes) == {"bot"}, "no user or optional scopes"
    assert len(scopes["bot"]) == len(set(scopes["bot"])), scopes["bot"]
    called = slack_methods()
    unlisted = sorted(called - set(METHOD_SCOPES))
    assert not unlisted, (f"{unlisted} not in testkit/fake_slack.py METHOD_SCOPES: add each "
                          "with the scope Slack's method reference lists")
    needed = {"commands"}  # slash commands and the message shortcut
    for method in called:
        need = METHOD_SCOPES[method]
        if isinstance(need, dict):
            needed |= {need[kind] for kind in BOT_CONVERSATIONS}
        elif need is not None:
            needed.add(need)
    for event in _manifest()["settings"]["event_subscriptions"]["bot_events"]:
        assert event in EVENT_SCOPES, f"{event}: add the scope Slack's event reference lists"
        needed |= {EVENT_SCOPES[event]} - {None}
    have = set(scopes["bot"])
    assert not needed - have, f"manifest.yaml lacks bot scopes {sorted(needed - have)}"
    assert not have - needed, f"manifest.yaml asks for unused scopes {sorted(have - needed)}"


def test_every_scope_says_what_it_is_for() -> None:
    lines = [line for line in MANIFEST.read_text(encoding="utf-8").splitlines()
             if re.fullmatch(r"\s+- [a-z]+:?[a-z.]*(\s+#.*)?", line)
             and line.strip()[2:].split()[0] in _manifest()["oauth_config"]["scopes"]["bot"]]
    assert len(lines) == len(_manifest()["oauth_config"]["scopes"]["bot"])
    assert all("#" in line for line in lines), [ln for ln in lines if "#" not in ln]


def test_code_scan_finds_calls_and_refuses_hidden_ones() -> None:
    """Negative control: the scanner sees each way the bot calls Slack, expands
    files_upload_v2 into its steps, and will not accept a method it cannot read."""
    found = _methods_in(ast.parse(
        "async def f(client, m):\n"
        "    await client.chat_postMessage(channel='C1', text='x')\n"
        "    await client.files_upload_v2(channel='C1', content=b'', filename='a')\n"
        "    await client.api_call('users.info', params={})\n"), "x.py", _sdk_methods())
    assert found == {"chat.postMessage", "files.getUploadURLExternal",
                     "files.completeUploadExternal", "users.info"}
    with pytest.raises(AssertionError, match="cannot tell"):
        _methods_in(ast.parse("async def f(client, m):\n    await client.api_call(m)\n"),
                    "x.py", _sdk_methods())
    assert {"chat.postMessage", "chat.update", "conversations.open", "views.publish",
            "files.getUploadURLExternal", "auth.test"} <= slack_methods()


# -- which Web API methods the bot calls, read from the code ---------------------------------

# Slack's event reference: the scope each subscribed bot event needs (None: none)
EVENT_SCOPES: dict[str, str | None] = {
    "message.channels": "channels:history",
    "message.groups": "groups:history",
    "message.im": "im:history",
    "reaction_added": "reactions:read",
    "app_home_opened": None,
}
# the kinds of conversation the bot reads history in: customer groups (public or private
# channels) and its own DMs (a retried DM looks for what it may have posted); no group DMs
BOT_CONVERSATIONS = ("public", "private", "im")
# calls Bolt makes itself: AsyncApp checks its token with auth.test before the first request
FRAMEWORK_METHODS = {"auth.test"}
# the places allowed to pass a method name in a variable: the messenger's one call helper
# and the listeners' logging client, both pass-throughs whose callers name literal methods
VARIABLE_METHOD_OK = {("bot/adapters/slack/messenger.py", "_call"),
                      ("bot/adapters/slack/app.py", "api_call")}
SOURCES = ("bot", "handlers", "storage")


def _sdk_methods() -> dict[str, set[str]]:
    """AsyncWebClient's Python methods -> the Web API methods each calls, read from the SDK's
    source: `chat_postMessage` -> chat.postMessage, `files_upload_v2` -> its upload steps."""
    from slack_sdk.web import async_client

    tree = ast.parse(Path(async_client.__file__).read_text(encoding="utf-8"))
    cls = next(n for n in tree.body
               if isinstance(n, ast.ClassDef) and n.name == "AsyncWebClient")
    direct: dict[str, set[str]] = {}
    calls: dict[str, set[str]] = {}
    for fn in cls.body:
        if not isinstance(fn, ast.AsyncFunctionDef) or fn.name.startswith("_"):
            continue
        direct[fn.name], calls[fn.name] = set(), set()
        for node in ast.walk(fn):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    isinstance(node.func.value, ast.Name) and node.func.value.id == "self":
                if node.func.attr == "api_call" and node.args and \
                        isinstance(node.args[0], ast.Constant):
                    direct[fn.name].add(str(node.args[0].value))
                else:
                    calls[fn.name].add(node.func.attr)

    def resolve(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
        out = set(direct.get(name, set()))
        for other in calls.get(name, set()) - seen - {name}:
            if other in direct:
                out |= resolve(other, seen | {name})
        return out

    return {name: resolve(name) for name in direct if name != "api_call"}


def _methods_in(tree: ast.AST, where: str, sdk: dict[str, set[str]]) -> set[str]:
    found: set[str] = set()
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}

    def enclosing(node: ast.AST) -> str:
        while node in parents:
            node = parents[node]
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                return node.name
        return ""

    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name = node.func.attr
        if name == "api_call" or (name == "_call" and where.startswith("bot/adapters/slack/")):
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.add(arg.value)
            else:
                assert (where, enclosing(node)) in VARIABLE_METHOD_OK, \
                    f"{where}:{node.lineno}: cannot tell which Slack method {name}() calls"
        elif name in sdk:
            found |= sdk[name]
    return found


def slack_methods() -> set[str]:
    """Every Web API method the bot can call: the SDK client's methods and literal
    api_call()/_call() method names anywhere in the code, plus Bolt's own."""
    sdk = _sdk_methods()
    found = set(FRAMEWORK_METHODS)
    for source in SOURCES:
        for path in sorted((REPO / source).rglob("*.py")):
            where = path.relative_to(REPO).as_posix()
            found |= _methods_in(ast.parse(path.read_text(encoding="utf-8")), where, sdk)
    return found


def test_bot_events_are_exactly_what_the_bot_handles() -> None:
    events = _manifest()["settings"]["event_subscriptions"]
    assert set(events["bot_events"]) == EXPECTED_BOT_EVENTS
    assert "user_events" not in events
