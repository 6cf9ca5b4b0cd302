"""Every user-facing message exists in English and Simplified Chinese with the same fields."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.domain.catalog import CHANNELS, PERKS
from bot.domain.model import CaseStatus, Lang, Severity, Term, Tier
from bot.i18n import Translator, messages
from handlers import build_router

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [p for d in ("bot", "handlers", "storage") for p in (ROOT / d).rglob("*.py")]
# a literal message id passed to the translator, a Refusal, a UsageError or a reply helper
LITERAL = re.compile(
    r"""(?:\bt|\bself|call\.t|call\.reply|Refusal|UsageError|Translator\([^()]*\))\(\s*"""
    r"""["']([a-z_]+\.[a-z_.]+)["']""")
ID_ARG = re.compile(r"""(?:help_id=|msg_id\s*=\s*|\(\s*)["']((?:notice|case|help)\.[a-z_.]+)["']""")


def used_ids() -> set[str]:
    ids: set[str] = set()
    for path in SOURCES:
        text = path.read_text("utf-8")
        ids |= set(LITERAL.findall(text)) | set(ID_ARG.findall(text))
    return ids


def fields(template: str) -> set[str]:
    return set(re.findall(r"\{(\w*)\}", template))


def test_every_literal_message_id_in_the_code_has_both_translations() -> None:
    ids = used_ids()
    assert len(ids) > 100  # the scan itself works
    missing = {lang.value: sorted(ids - set(messages(lang))) for lang in Lang}
    assert missing == {"en": [], "zh": []}


def test_languages_have_the_same_ids_and_fields() -> None:
    en, zh = messages(Lang.EN), messages(Lang.ZH)
    assert set(en) == set(zh)
    assert {k: fields(v) for k, v in en.items()} == {k: fields(v) for k, v in zh.items()}


@pytest.mark.parametrize("family", [
    [f"tier.{t.value}" for t in Tier], [f"term.{t.value}" for t in Term],
    [f"severity.{s.value}" for s in Severity], [f"status.{s.value}" for s in CaseStatus],
    [f"channel.{c}" for c in CHANNELS], [f"perk.{p}" for p in PERKS],
    [f"case.{s}_notice" for s in ("resolved", "closed")],
    [f"help.{root}.title" for root in build_router().roots()],
    [cmd.help_id for cmd in build_router().commands],
])
def test_message_families_built_at_run_time_are_complete(family: list[str]) -> None:
    for lang in Lang:
        assert [m for m in family if m not in messages(lang)] == []


def test_catalog_vocabulary_is_translated() -> None:
    from bot.config import load_catalog

    catalog = load_catalog(None)
    ids = {f"handler.{p.handler}" for p in catalog.tiers.values()}
    ids |= {f"item.{i}" for p in catalog.tiers.values() for i in p.items}
    for lang in Lang:
        assert sorted(ids - set(messages(lang))) == []


def test_chinese_is_really_chinese_and_falls_back_only_when_missing() -> None:
    zh = Translator(Lang.ZH)
    assert zh("tier.enterprise") == "企业级"
    assert re.search(r"[\u4e00-\u9fff]", zh("case.unbound"))
    assert zh("unit.join") == ""  # an empty translation is a translation, not a gap
    assert zh("no.such.id") == "no.such.id"


def test_scanner_would_catch_a_missing_id(tmp_path: Path) -> None:
    sample = 'raise Refusal("case.brand_new_message", x=1)\nt("help.nothing_here")\n'
    found = set(LITERAL.findall(sample)) | set(ID_ARG.findall(sample))
    assert found == {"case.brand_new_message", "help.nothing_here"}
    assert not found <= set(messages(Lang.EN))
