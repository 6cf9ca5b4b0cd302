"""Monthly service reports: figures from a seeded month, tenant isolation, chart, schedule."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import pytest

from bot.services import reports
from bot.services.base import AppContext
from bot.services.job import JobContext
from bot.worker import Worker
from storage import jobs
from storage.tables import CaseRow
from testkit.chat import ACME_CH, ADMIN, BIZ_CH, CUSTOMER, NOWHERE_CH, TAM, Chat
from testkit.fakes import Clock, RecordingMessenger

M = timedelta(minutes=1)
H = timedelta(hours=1)


def case(n: int, account: str, sev: str, opened: datetime, target: timedelta,
         first: timedelta | None, resolved: timedelta | None, breached: bool) -> CaseRow:
    return CaseRow(id=n, ref=f"CS-{1000 + n}", account_key=account, team_id="T1",
                   channel_id="C", opener_user_id="U", severity=sev, requested_severity=sev,
                   summary=f"case {n}", description="", region=None, software=None,
                   status="acknowledged" if first else "open", opened_at=opened,
                   due_at=opened + target, warn_at=opened, target_label="x",
                   sla_generation=1, escort=False,
                   first_response_at=opened + first if first else None,
                   first_response_by="UTAM" if first else None,
                   resolved_at=opened + resolved if resolved else None, warned=False,
                   breached=breached, version=1)


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


@pytest.fixture
async def chat(chat: Chat, ctx: AppContext) -> Chat:
    """The shared seeded world plus a month of cases written straight to the table."""
    c = chat
    async with ctx.db.transaction() as s:
        s.add_all([
            case(1, "acme", "S1", utc(2026, 10, 5, 2), 10 * M, 5 * M, 2 * H, False),
            case(2, "acme", "S1", utc(2026, 10, 6, 2), 10 * M, 20 * M, 10 * H, True),
            case(3, "acme", "S2", utc(2026, 10, 7, 2), 30 * M, 10 * M, 4 * H, False),
            case(4, "acme", "S3", utc(2026, 10, 8, 2), 3 * H, 60 * M, None, False),
            case(5, "acme", "S5", utc(2026, 10, 20, 2), 16 * H, None, None, True),
            # 2026-10-01 04:00 in Shanghai: October there, September in UTC
            case(6, "acme", "S4", utc(2026, 9, 30, 20), 8 * H, 30 * M, 1 * H, False),
            # 2026-11-01 01:00 in Shanghai: November, not October
            case(7, "acme", "S1", utc(2026, 10, 31, 17), 10 * M, 1 * M, None, False),
            # another tenant's October case must not appear in acme's report
            case(8, "bizco", "S1", utc(2026, 10, 9, 2), 10 * M, 1 * M, 1 * H, True),
        ])
    return c


async def test_report_figures_from_a_seeded_month(chat: Chat, ctx: AppContext,
                                                  worker: Worker,
                                                  messenger: RecordingMessenger) -> None:
    reply = await chat(TAM, NOWHERE_CH, "/tam report acme 2026-10")
    assert "The 2026-10 report of acme is being prepared" in reply.text
    await worker.run_once()
    rows = await reports.reports_of(ctx, "acme")
    assert len(rows) == 1 and rows[0].deadline.isoformat() == "2026-11-10"
    f = rows[0].figures
    assert f is not None
    # cases 1-6: 6 opened, 5 answered, 4 on time; case 5 never answered and past due counts
    # as a miss: 4 / (5 + 1) = 66.7 %
    assert (f["opened"], f["responded"], f["within_target"]) == (6, 5, 4)
    assert f["unanswered_overdue"] == 1
    assert f["attainment_pct"] == 66.7
    # first responses 5, 10, 20, 30, 60 min: nearest rank p50 = 3rd, p90 = 5th
    assert (f["fr_p50_min"], f["fr_p90_min"]) == (20.0, 60.0)
    assert f["breaches"] == 2
    # resolved 1 h, 2 h, 4 h, 10 h: p50 = 2nd, p90 = 4th
    assert (f["resolved"], f["res_p50_h"], f["res_p90_h"]) == (4, 2.0, 10.0)
    assert f["by_severity"] == {"S1": [2, 2, 1, 1], "S2": [1, 1, 1, 0], "S3": [1, 1, 1, 0],
                                "S4": [1, 1, 1, 0], "S5": [1, 0, 0, 1]}
    post = next(s for s in messenger.sent if s.target == ACME_CH and "Monthly" in s.text)
    assert "Monthly service report — Acme Corp, 2026-10</b> (due by 2026-11-10)" in post.text
    assert "attainment 66.7 %" in post.text
    assert "<b>Resource overview</b> — no data for this month" in post.text
    assert "Escort days: 0 used, 3 left" in post.text
    channel, name, png, thread = messenger.uploads[0]
    assert channel == ACME_CH and name == "service-report-acme-2026-10.png"
    assert thread == post.ts and png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    assert width > 300 and height > 200


async def test_report_for_a_chinese_account_and_provider_sections(
        chat: Chat, ctx: AppContext, worker: Worker, messenger: RecordingMessenger) -> None:
    class Provider:
        async def sections(self, account: object, year: int, month: int) -> dict[str, str]:
            return {"spending": "USD 12,400 (+8 %)", "bogus": "ignored"}

    await chat(ADMIN, NOWHERE_CH, "/tam plan bizco upgrade enterprise confirm")
    ctx.report_provider = Provider()
    await chat(TAM, NOWHERE_CH, "/tam report bizco 2026-10")
    await worker.run_once()
    post = next(s for s in messenger.sent if s.target == BIZ_CH and "月报" in s.text)
    assert "<b>消费趋势</b> — USD 12,400 (+8 %)" in post.text and "ignored" not in post.text
    assert "<b>资源概况</b> — 本月暂无数据" in post.text
    f = (await reports.reports_of(ctx, "bizco"))[0].figures
    assert f is not None and f["opened"] == 1 and f["by_severity"]["S1"] == [1, 1, 1, 1]


@pytest.mark.parametrize(("line", "expected"), [
    ("/tam report bizco", "monthly service report comes with Enterprise"),
    ("/tam report acme 2026-13", "“2026-13” is not a month"),
    ("/tam report acme 2026-11", "2026-11 is not over yet"),
    ("/tam report nobody", "no account “nobody”"),
])
async def test_report_refusals(chat: Chat, line: str, expected: str) -> None:
    assert expected in (await chat(TAM, NOWHERE_CH, line)).text


async def test_customers_cannot_request_reports(chat: Chat) -> None:
    assert "for support staff" in (await chat(CUSTOMER, ACME_CH, "/tam report acme")).text


async def test_charts_can_be_turned_off(chat: Chat, ctx: AppContext,
                                        messenger: RecordingMessenger) -> None:
    from dataclasses import replace

    quiet = replace(ctx, settings=replace(ctx.settings, report_charts=False))
    await chat(TAM, NOWHERE_CH, "/tam report acme 2026-10")
    await Worker(quiet, messenger, name="q").run_once()
    assert messenger.uploads == []
    assert any("Monthly service report" in s.text for s in messenger.sent)


async def test_schedule_queues_each_enterprise_report_once_and_chains(
        chat: Chat, ctx: AppContext, worker: Worker, messenger: RecordingMessenger,
        clock: Clock) -> None:
    await reports.ensure_schedule(ctx)
    await reports.ensure_schedule(ctx)  # idempotent
    async with ctx.db.transaction() as s:
        row = await jobs.get_by_key(s, "reports:schedule:2026-12")
    assert row is not None and row.due_at == utc(2026, 12, 1, 2)  # 10:00 in Shanghai
    clock.now = utc(2026, 12, 1, 2, 0, 1)
    await worker.run_once()
    await worker.run_once()
    posts = [s for s in messenger.sent if "Monthly service report" in s.text]
    assert [p.target for p in posts] == [ACME_CH]  # bizco is business: no report
    assert "2026-11" in posts[0].text
    async with ctx.db.transaction() as s:
        assert await jobs.get_by_key(s, "reports:schedule:2027-01") is not None
        assert await jobs.count(s, kind="report.post") == 1
    # the same month's schedule firing again (a retry) queues nothing new
    job = jobs.Job(0, "report.schedule", utc(2026, 12, 1, 2), {"month": "2026-12"}, "x", 2)
    again = await reports.run_schedule(JobContext(ctx, messenger, clock.now), job)
    assert again["queued"] == 0


async def test_a_months_report_counts_the_perks_used_in_that_month(
        chat: Chat, ctx: AppContext, worker: Worker, messenger: RecordingMessenger,
        clock: Clock) -> None:
    """Perks count in the month they are used, not the month they were approved: escorts
    approved in November for 30 Nov–1 Dec and 10 Dec are not in October's report."""
    assert "PR-1001" in (await chat(CUSTOMER, ACME_CH, "/support escort 2026-11-30 2")).text
    assert "PR-1002" in (await chat(CUSTOMER, ACME_CH, "/support escort 2026-12-10")).text
    assert "approved" in (await chat(TAM, ACME_CH, "/tam approve PR-1001")).text
    assert "approved" in (await chat(TAM, ACME_CH, "/tam approve PR-1002")).text
    clock.now = utc(2027, 1, 4, 2)
    for month in ("2026-10", "2026-11", "2026-12"):
        reply = await chat(TAM, NOWHERE_CH, f"/tam report acme {month}")
        assert "being prepared" in reply.text
    await worker.run_once()
    await worker.run_once()
    figures = {r.month: r.figures for r in await reports.reports_of(ctx, "acme")}
    perks = {m: f["perks"]["escort"] for m, f in figures.items() if f is not None}
    # [used in the month, left of the plan year when the month ended]
    assert perks == {"2026-10": [0, 3], "2026-11": [1, 0], "2026-12": [2, 0]}
    october = next(s.text for s in messenger.sent if "2026-10</b> (due" in s.text)
    assert "Escort days: 0 used, 3 left" in october


async def test_a_month_without_cases_gets_the_text_and_no_chart(
        chat: Chat, ctx: AppContext, worker: Worker, messenger: RecordingMessenger) -> None:
    # case 6 opened on 30 September in UTC, which is already October in Shanghai
    await chat(TAM, NOWHERE_CH, "/tam report acme 2026-09")
    await worker.run_once()
    post = next(s for s in messenger.sent if "2026-09</b> (due" in s.text)
    assert post.target == ACME_CH and "No cases this month." in post.text  # the overview
    assert "Service tickets</b> — no cases this month" in post.text
    assert messenger.uploads == []
    f = (await reports.reports_of(ctx, "acme"))[0].figures
    assert f is not None and f["opened"] == 0
