"""Every user-facing message exists in English and Simplified Chinese with the same fields."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.domain.catalog import CHANNELS, PERKS
from bot.domain.model import CaseStatus, Lang, Severity, Term, Tier
from bot.i18n import Translator, messages
from handlers import build_router

ROOT = Path(__file__).resolve().parents[2]
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


PLURAL = re.compile(r"\.(one|other)$")


def known(lang: Lang) -> set[str]:
    """Ids a caller may use: plain ids, and plural ids by their base (`x` for `x.other`)."""
    return {PLURAL.sub("", k) for k in messages(lang)}


def merged(lang: Lang) -> dict[str, set[str]]:
    """Fields per id; a plural id's fields are those of its forms together (`{n}` chooses)."""
    out: dict[str, set[str]] = {}
    for k, v in messages(lang).items():
        out.setdefault(PLURAL.sub("", k), set()).update(fields(v))
    for base in {PLURAL.sub("", k) for k in messages(lang) if PLURAL.search(k)}:
        out[base].add("n")
    return out


def test_every_literal_message_id_in_the_code_has_both_translations() -> None:
    ids = used_ids()
    assert len(ids) > 100  # the scan itself works
    missing = {lang.value: sorted(ids - known(lang)) for lang in Lang}
    assert missing == {"en": [], "zh": []}


def test_languages_have_the_same_ids_and_fields() -> None:
    assert known(Lang.EN) == known(Lang.ZH)
    assert merged(Lang.EN) == merged(Lang.ZH)


def test_plural_forms_are_complete_and_chinese_has_one_form() -> None:
    for lang in Lang:
        catalog = messages(lang)
        ones = {k[:-4] for k in catalog if k.endswith(".one")}
        others = {k[:-6] for k in catalog if k.endswith(".other")}
        assert ones <= others, lang  # every `.one` has its general form
        assert not others & set(catalog), lang  # an id is plural or plain, not both
    assert not [k for k in messages(Lang.ZH) if k.endswith(".one")]


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
