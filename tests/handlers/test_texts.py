"""Texts read like a finished product in both languages (issue 10 points 5, 7, 8, 9, 11, 14).

Countdowns share one rounding rule; counts use plural forms; Chinese replies use full-width
punctuation and list separators; invisible control characters never reach an echo; money
inputs state their unit; refusals follow the reader's language like every other reply.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest

from bot.domain.billing import format_money, parse_money
from bot.domain.model import Account, Lang, Severity, Term, Tier
from bot.domain.perks import PerkBalance
from bot.domain.reports import CaseFact, case_stats
from bot.i18n import Translator, clean_user_text, messages
from bot.services import reports
from bot.services.base import AppContext
from bot.worker import Worker
from handlers.core import Reply, Router
from testkit.chat import (
    ACME_CH,
    ADMIN,
    BIZ_CH,
    CUSTOMER,
    NOWHERE_CH,
    OTHER_CUSTOMER,
    TAM,
    Chat,
)
from testkit.fakes import Clock, RecordingMessenger

EN, ZH = Translator(Lang.EN), Translator(Lang.ZH)

# ASCII punctuation touching a CJK character (spaces between allowed for), and the
# tokens that are not prose: emoji shortcodes, Slack mentions and neutral markup tokens
ASCII_NEAR_CJK = re.compile(r"[\u4e00-\u9fff]\s*[,:;()]|[,:;()]\s*[\u4e00-\u9fff]")
NOT_PROSE = re.compile(r":[a-z_]+:|</?[a-z@#!][^>]*>")


def ascii_punctuation_in_chinese(text: str) -> list[str]:
    return ASCII_NEAR_CJK.findall(NOT_PROSE.sub(" ", text))


# --- point 5: countdowns


@pytest.mark.parametrize(("delta", "en", "zh"), [
    (timedelta(seconds=0), "1s", "1秒"),  # never "0m" nor "0s"
    (timedelta(seconds=30), "30s", "30秒"),
    (timedelta(seconds=59.4), "59s", "59秒"),
    (timedelta(seconds=59.6), "1m", "1分钟"),
    (timedelta(seconds=89), "1m", "1分钟"),
    (timedelta(seconds=90), "2m", "2分钟"),
    (timedelta(minutes=1, seconds=59), "2m", "2分钟"),  # 2 min remain: not "1m"
    (timedelta(minutes=2), "2m", "2分钟"),
    (timedelta(hours=1), "1h", "1小时"),
    (timedelta(hours=1, minutes=29, seconds=40), "1h 30m", "1小时30分钟"),
    (timedelta(hours=15, minutes=20), "15h 20m", "15小时20分钟"),
    (timedelta(hours=23, minutes=59, seconds=50), "1d", "1天"),
    (timedelta(days=1, hours=2, minutes=31), "1d 3h", "1天3小时"),
    (-timedelta(minutes=4, seconds=50), "5m", "5分钟"),  # late reads the same way
])
def test_one_rounding_rule_for_every_countdown(delta: timedelta, en: str, zh: str) -> None:
    assert EN.duration(delta) == en
    assert ZH.duration(delta) == zh


def test_time_left_reads_left_due_now_and_overdue() -> None:
    due = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    assert EN.time_left(due, due - timedelta(minutes=1, seconds=59)) == "2m left"
    assert EN.time_left(due, due) == "due now"
    assert EN.time_left(due, due + timedelta(seconds=20)) == "overdue by 20s"
    assert ZH.time_left(due, due - timedelta(minutes=3)) == "剩余 3分钟"


async def test_staff_notices_count_down_with_the_same_rule(
        chat: Chat, ctx: AppContext, messenger: RecordingMessenger, clock: Clock) -> None:
    worker = Worker(ctx, messenger, name="w1")
    await chat(CUSTOMER, ACME_CH, "/support open S2 checkout API returns 500")
    clock.advance(minutes=28, seconds=1)  # 1m59s before the 30 min target
    await worker.run_once()
    await worker.run_once()
    near = [s.text for s in messenger.sent if "Near breach" in s.text and s.card is None]
    assert near and all("has 2m left" in text for text in near)
    clock.advance(minutes=2, seconds=19)  # 20 s past due
    await worker.run_once()
    await worker.run_once()
    late = [s.text for s in messenger.sent if "SLA breach:" in s.text and s.card is None]
    assert late and all("is 20s late" in text for text in late)
    assert not [s.text for s in messenger.sent if re.search(r"\b0[ms]\b", s.text)]


async def test_breaches_line_has_the_mark_once_at_its_start(
        chat: Chat, ctx: AppContext, messenger: RecordingMessenger, clock: Clock) -> None:
    worker = Worker(ctx, messenger, name="w1")
    await chat(CUSTOMER, ACME_CH, "/support open S1 acme down")
    clock.advance(minutes=11)
    await worker.run_once()  # the breach is recorded on the case
    await worker.run_once()
    text = (await chat(TAM, ACME_CH, "/tam breaches")).text
    line = next(ln for ln in text.splitlines() if "CS-1001" in ln)
    assert line.startswith("<mark:breach> acme: <b>CS-1001</b>")
    assert line.count("<mark:breach>") == 1
    # the customer's own list still flags the breach at the end of the line
    cases = (await chat(CUSTOMER, ACME_CH, "/support cases")).text
    assert cases.rstrip().endswith("<mark:breach>")


# --- point 7: English reads like a finished product


def test_no_catalog_entry_hedges_its_plural_or_nests_parentheses() -> None:
    for lang in Lang:
        for key, text in messages(lang).items():
            assert not re.search(r"\((s|es|ies)\)", text), (key, text)
            assert not re.search(r"\([^()]*\(", text), (key, text)
            assert not re.search(r"（[^（）]*（", text), (key, text)
            assert "?." not in text, (key, text)


@pytest.mark.parametrize(("msg_id", "n", "text"), [
    ("target.business_days", 1, "within 1 business day"),
    ("target.business_days", 2, "within 2 business days"),
    ("error.arg_count", 1, "This command takes 1 argument."),
    ("error.arg_count", 3, "This command takes 3 arguments."),
    ("count.groups", 1, "1 group"),
    ("count.groups", 0, "0 groups"),
    ("count.advisories", 1, "1 advisory"),
    ("count.advisories", 4, "4 advisories"),
])
def test_counts_use_the_plural_form_the_number_needs(msg_id: str, n: int, text: str) -> None:
    assert EN(msg_id, n=n) == text


def test_chinese_has_one_form_for_every_count() -> None:
    assert ZH("count.groups", n=1) == "1 个群" and ZH("count.groups", n=3) == "3 个群"
    assert ZH("error.arg_count", n=1) == "此命令需要 1 个参数。"


async def test_replies_count_in_words(chat: Chat) -> None:
    reply = await chat(CUSTOMER, ACME_CH, "/support escort 2026-12-10 2")
    assert "(2026-12-10 → 2026-12-11, 2 days)" in reply.text
    assert "This command takes 1 argument." in (await chat(TAM, ACME_CH, "/tam link")).text


def _report(opened: int) -> reports.Report:
    account = Account("acme", "Acme Corp", Tier.ENTERPRISE, Term.ANNUAL, date(2026, 1, 1),
                      date(2027, 1, 1), "cn-north-4", "Asia/Shanghai", Lang.EN)
    at = datetime(2026, 10, 5, 2, 0, tzinfo=UTC)
    facts = [CaseFact(Severity.S3, at, at + timedelta(hours=4), None, None, False)
             for _ in range(opened)]
    return reports.Report(account, 2026, 10, date(2026, 11, 5), case_stats(facts),
                          [], 0, 0, [])


def test_a_quiet_month_says_no_cases_instead_of_figures_that_cannot_exist() -> None:
    text = reports.render(_report(0), EN)
    assert "no cases this month" in text.lower()
    assert "p50 none" not in text and "attainment none" not in text
    assert "0 advisories sent" in text


def test_a_month_without_answers_says_so() -> None:
    text = reports.render(_report(1), EN)
    assert "1 case opened, none answered yet." in text
    assert "No first responses this month." in text and "p50 none" not in text


# --- point 8: Chinese punctuation


def test_every_chinese_catalog_entry_uses_full_width_punctuation() -> None:
    bad = {k: v for k, v in messages(Lang.ZH).items() if ascii_punctuation_in_chinese(v)}
    assert bad == {}


def test_the_punctuation_check_can_fail() -> None:
    assert ascii_punctuation_in_chinese("状态: 处理中, 剩余 (2分钟)")
    assert not ascii_punctuation_in_chinese("<mark:warning> 即将超时：<user:U1> 剩余 2分钟")


async def test_rendered_chinese_replies_use_full_width_punctuation(
        chat: Chat, clock: Clock) -> None:
    await chat(ADMIN, NOWHERE_CH, "/tam staff add <user:UZH> admin lang=zh")
    replies: list[Reply] = []
    for user, line in [
        (CUSTOMER, "/support help"), (CUSTOMER, "/support plan"),
        (CUSTOMER, "/support open S3 数据库连接失败"), (CUSTOMER, "/support open S2 接口超时"),
        (CUSTOMER, "/support cases"), (CUSTOMER, "/support sla"),
        (CUSTOMER, "/support case CS-1001"), (CUSTOMER, "/support scope nginx"),
        (CUSTOMER, "/support scope 未知软件"), (CUSTOMER, "/support escort 2026-12-10"),
        (CUSTOMER, "/support escort 2026-12-10 2"),
        (CUSTOMER, "/support requests"), (CUSTOMER, "/support open S9 x"),
        (CUSTOMER, "/support open"), (CUSTOMER, "/support case XX-1"),
        (CUSTOMER, "/support review sometimes 2026-12-10"), (CUSTOMER, "/support bogus"),
        (CUSTOMER, "/tam ack CS-1001"), (CUSTOMER, '/support open S3 "unclosed'),
        ("UZH", "/tam help"), ("UZH", "/tam breaches"), ("UZH", "/tam account tag bizco"),
        ("UZH", "/tam account usage bizco 2026-10 125000.50"),
        ("UZH", "/tam account usage bizco 2026-10 abc"), ("UZH", "/tam advisories"),
        ("UZH", "/tam severity CS-1001 S9"), ("UZH", "/tam link"),
        ("UZH", "/tam approve PR-1001"), ("UZH", "/tam ack CS-1001"),
    ]:
        replies.append(await chat(user, BIZ_CH, line))
        if line == "/support sla":
            clock.advance(minutes=45)  # S2 on Business: one of them breaches
    replies.append(await chat("UZH", BIZ_CH, "/tam plan bizco upgrade enterprise "
                                             "consumption=125000.50"))
    replies.append(await chat("UZH", BIZ_CH, "/tam plan bizco upgrade enterprise"))
    texts = [r.text for r in replies]
    assert all(re.search(r"[\u4e00-\u9fff]", text) for text in texts), texts
    assert "、" in texts[1]  # the plan lists its channels the Chinese way
    breaches = next(text for text in texts if text.startswith("已超时及即将超时"))
    assert "<mark:breach> bizco：<b>CS-1002</b>" in breaches
    bad = {text: ascii_punctuation_in_chinese(text) for text in texts
           if ascii_punctuation_in_chinese(text)}
    assert bad == {}


def test_a_chinese_report_separates_its_lists_the_chinese_way() -> None:
    report = _report(2)
    report.perks = [PerkBalance("escort", 3, 0, 1), PerkBalance("availability_check", 1, 0, 0)]
    report.plan_changes = [("upgrade", "business", "enterprise", date(2026, 10, 9)),
                           ("downgrade", "enterprise", "business", date(2026, 10, 20))]
    text = reports.render(report, ZH)
    assert "本月新建案例 2 个" in text and "；可用性检查：" in text and "；降级" in text
    assert ascii_punctuation_in_chinese(text) == []


# --- point 9: control characters


def test_clean_user_text_drops_bidi_and_control_characters_only() -> None:
    assert clean_user_text("abc\u202edcba\u2066x\u2069\u200e\u200f\x07\x1b[31m") == "abcdcbax[31m"
    assert clean_user_text("line 1\nline 2\ttab 数据库 ✓") == "line 1\nline 2\ttab 数据库 ✓"


async def test_typed_overrides_are_neutralised_before_any_echo(chat: Chat) -> None:
    opened = await chat(CUSTOMER, ACME_CH, "/support open S3 invoice\u202e fdp.exe")
    assert "CS-1001" in opened.text
    listing = (await chat(CUSTOMER, ACME_CH, "/support cases")).text
    assert "invoice fdp.exe" in listing and "\u202e" not in listing
    unknown = (await chat(CUSTOMER, ACME_CH, "/support scope fo\u2066o\u2069")).text
    assert "“foo”" in unknown


def test_form_values_are_cleaned_too() -> None:
    from bot.adapters.slack.views import modal_values

    view = {"state": {"values": {"summary": {"value": {
        "type": "plain_text_input", "value": "db\u202e down"}}}}}
    assert modal_values(view) == {"summary": "db down"}


# --- point 11: money units


def test_money_is_typed_in_major_units_and_kept_in_minor_units() -> None:
    assert parse_money("125000.50") == 12_500_050
    assert parse_money("125000") == 12_500_000
    assert parse_money("1,234.5") == 123_450
    assert parse_money("12.345") is None  # no fractions of a minor unit
    assert format_money(12_500_050, "USD") == "USD 125,000.50"


async def test_money_inputs_state_their_unit(chat: Chat, router: Router) -> None:
    for help_id in ("help.tam.account_usage", "help.tam.plan"):
        assert "major currency units" in EN(help_id)
        assert "货币主单位" in ZH(help_id)
    recorded = await chat(TAM, ACME_CH, "/tam account usage acme 2026-10 125000.50")
    assert "recorded as USD 125,000.50" in recorded.text
    bad = await chat(TAM, ACME_CH, "/tam account usage acme 2026-10 12.345")
    assert bad.refused and "major currency units" in bad.text


# --- point 14: one language rule


async def test_a_customer_of_a_chinese_group_is_refused_in_chinese(chat: Chat) -> None:
    for user in (CUSTOMER, OTHER_CUSTOMER):
        reply = await chat(user, BIZ_CH, "/tam ack CS-1001")
        assert reply.refused and reply.text == ZH("error.staff_only", root="tam")
    usage = await chat(CUSTOMER, BIZ_CH, "/support open S9 x")
    assert usage.refused and "用法" in usage.text
    quotes = await chat(CUSTOMER, BIZ_CH, '/support open S3 "x')
    assert quotes.refused and quotes.text == ZH("error.quotes")


async def test_elsewhere_the_same_rule_gives_english(chat: Chat) -> None:
    assert (await chat(CUSTOMER, ACME_CH, "/tam ack CS-1001")).text == \
        EN("error.staff_only", root="tam")
    assert (await chat(CUSTOMER, NOWHERE_CH, "/tam ack CS-1001")).text == \
        EN("error.staff_only", root="tam")
    # staff read their own setting wherever they type, refusals included
    await chat(ADMIN, NOWHERE_CH, "/tam staff add <user:UZH> engineer lang=zh")
    denied = await chat("UZH", ACME_CH, "/tam account add x basic monthly")
    assert denied.refused and "需要" in denied.text
