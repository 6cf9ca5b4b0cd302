"""The monthly report by email (issue 13, point 3) and skipped reports (point 4), against a
real SMTP server in this process (`testkit.smtp`): what arrives, a 4xx then success, a 5xx
told to staff once, recipients managed by staff only, no SMTP = group only."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.adapters.email.smtp import SmtpMailer, message_id
from bot.config import Settings
from bot.services import reports
from bot.services.base import AppContext
from bot.worker import Worker
from storage import jobs
from storage.tables import CaseRow
from testkit.chat import ACME_CH, ADMIN, BIZ_CH, CUSTOMER, ENGINEER, NOWHERE_CH, TAM, Chat
from testkit.fakes import Clock, RecordingMessenger
from testkit.smtp import SmtpServer, tls_contexts

M = timedelta(minutes=1)
H = timedelta(hours=1)
FROM = "reports@cloud.example"


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


def case(n: int, account: str, sev: str, opened: datetime, first: timedelta) -> CaseRow:
    return CaseRow(id=n, ref=f"CS-{1000 + n}", account_key=account, team_id="T1",
                   channel_id="C", opener_user_id="U", severity=sev, requested_severity=sev,
                   summary=f"case {n}", description="", region=None, software=None,
                   status="acknowledged", opened_at=opened, due_at=opened + 10 * M,
                   warn_at=opened, target_label="x", sla_generation=1, escort=False,
                   first_response_at=opened + first, first_response_by="UTAM",
                   resolved_at=opened + 2 * H, warned=False, breached=first > 10 * M,
                   version=1)


def smtp_settings(settings: Settings, server: SmtpServer, **kw: object) -> Settings:
    values: dict[str, object] = {"smtp_host": "127.0.0.1", "smtp_port": server.port,
                                 "smtp_tls": "none", "smtp_from": FROM, **kw}
    return replace(settings, **values)  # type: ignore[arg-type]


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    server = SmtpServer()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def mail_ctx(ctx: AppContext, smtp: SmtpServer, chat: Chat) -> AppContext:
    """The shared context with email on: a real SMTP client to the in-process server."""
    ctx.settings = smtp_settings(ctx.settings, smtp)
    ctx.mailer = SmtpMailer(ctx.settings)
    async with ctx.db.transaction() as s:
        s.add_all([case(1, "acme", "S1", utc(2026, 10, 5, 2), 5 * M),
                   case(2, "acme", "S2", utc(2026, 10, 7, 2), 20 * M)])
    return ctx


async def test_the_report_arrives_by_email_as_html_text_and_chart(
        mail_ctx: AppContext, chat: Chat, worker: Worker, smtp: SmtpServer,
        messenger: RecordingMessenger) -> None:
    for address in ("ops@acme.example", "CFO@Acme.example"):
        added = await chat(TAM, NOWHERE_CH, f"/tam account email acme add {address}")
        assert "will receive the monthly reports of acme by email" in added.text
    reply = await chat(TAM, NOWHERE_CH, "/tam report acme 2026-10")
    assert "being prepared" in reply.text and "emailed to 2 recipients" in reply.text
    await worker.run_once()
    # the group still gets its post
    assert any(s.target == ACME_CH and "Monthly service report" in s.text
               for s in messenger.sent)
    assert sorted(r.recipients[0] for r in smtp.received) == ["cfo@acme.example",
                                                              "ops@acme.example"]
    mail = next(r for r in smtp.received if r.recipients == ["ops@acme.example"])
    msg = mail.message
    assert mail.sender == FROM and msg["From"] == FROM and msg["To"] == "ops@acme.example"
    assert msg["Subject"] == "Monthly service report — Acme Corp, 2026-10"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Message-ID"] == message_id("report-email:acme:2026-10:ops@acme.example", FROM)
    assert msg.get_content_type() == "multipart/alternative"
    text = mail.text("text/plain")
    html = mail.text("text/html")
    # the seed's sections in the seed's order (5.8), then the bot's extras
    headings = ["Overview", "Service summary", "Resource overview", "Service tickets",
                "Security protection", "Optimization advice", "Spending trend", "Perks",
                "Proactive care", "Plan changes"]
    assert [text.index(f"\n{h}\n") for h in headings] == sorted(
        text.index(f"\n{h}\n") for h in headings)
    assert [html.index(f">{h}</h2>") for h in headings] == sorted(
        html.index(f">{h}</h2>") for h in headings)
    assert "2 cases opened, 2 answered" in text and "<b>" not in text
    assert "<strong>" not in text and "Escort days: 0 used, 3 left" in text
    assert '<img src="cid:chart"' in html and "2 cases opened, 2 answered" in html
    chart = mail.part("image/png")
    assert chart["Content-ID"] == "<chart>"
    assert chart.get_filename() == "service-report-acme-2026-10.png"
    assert chart.get_content().startswith(b"\x89PNG\r\n\x1a\n")
    async with mail_ctx.db.transaction() as s:
        assert await jobs.count(s, status="done", kind="report.email") == 2


async def test_asked_twice_the_report_is_emailed_once(
        mail_ctx: AppContext, chat: Chat, worker: Worker, smtp: SmtpServer) -> None:
    await chat(TAM, NOWHERE_CH, "/tam account email acme add ops@acme.example")
    await chat(TAM, NOWHERE_CH, "/tam report acme 2026-10")
    again = await chat(TAM, NOWHERE_CH, "/tam report acme 2026-10")
    assert "1 recipient already has the 2026-10 report by email" in again.text
    await worker.run_once()
    await worker.run_once()
    assert len(smtp.received) == 1


async def test_a_4xx_is_retried_with_backoff_then_sent_once(
        mail_ctx: AppContext, chat: Chat, worker: Worker, smtp: SmtpServer,
        clock: Clock) -> None:
    await chat(TAM, NOWHERE_CH, "/tam account email acme add ops@acme.example")
    smtp.data_replies = ["451 4.3.0 Try again later", "452 4.3.1 Insufficient storage"]
    await chat(TAM, NOWHERE_CH, "/tam report acme 2026-10")
    await worker.run_once()
    assert smtp.received == [] and smtp.attempts == 1
    async with mail_ctx.db.transaction() as s:
        row = await jobs.get_by_key(s, "report-email:acme:2026-10:ops@acme.example")
        assert row is not None and row.status == "pending" and "451" in str(row.last_error)
        first_retry = row.due_at
    assert first_retry == clock.now + timedelta(seconds=1)  # backoff: 1 s, then 2 s, ...
    clock.advance(seconds=1)
    await worker.run_once()
    async with mail_ctx.db.transaction() as s:
        row = await jobs.get_by_key(s, "report-email:acme:2026-10:ops@acme.example")
        assert row is not None and row.status == "pending" and "452" in str(row.last_error)
        assert row.due_at == clock.now + timedelta(seconds=2)
    clock.advance(seconds=2)
    await worker.run_once()
    assert smtp.attempts == 3 and len(smtp.received) == 1
    clock.advance(minutes=10)
    await worker.run_once()
    assert len(smtp.received) == 1


async def test_a_5xx_is_logged_once_told_to_staff_once_and_not_retried(
        mail_ctx: AppContext, chat: Chat, worker: Worker, smtp: SmtpServer,
        messenger: RecordingMessenger, clock: Clock,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    await chat(TAM, NOWHERE_CH, "/tam account email acme add gone@acme.example")
    smtp.rcpt_replies = ["550 5.1.1 No such user"]
    await chat(TAM, NOWHERE_CH, "/tam report acme 2026-10")
    await worker.run_once()
    clock.advance(minutes=30)
    await worker.run_once()
    assert smtp.received == []
    duty = [s.text for s in messenger.sent if s.target == "CDUTY"]
    assert duty == ["<mark:error> The 2026-10 report of acme could not be emailed to "
                    "gone@acme.example; the mail server refused it for good: SMTP refused "
                    "gone@acme.example: 550 5.1.1 No such user"]
    logged = [r for r in caplog.records if "refused for good" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is None
    async with mail_ctx.db.transaction() as s:
        row = await jobs.get_by_key(s, "report-email:acme:2026-10:gone@acme.example")
        assert row is not None and row.status == "done" and row.attempts == 1


async def test_a_recipient_removed_before_the_send_gets_nothing(
        mail_ctx: AppContext, chat: Chat, worker: Worker, smtp: SmtpServer) -> None:
    await chat(TAM, NOWHERE_CH, "/tam account email acme add ops@acme.example")
    await chat(TAM, NOWHERE_CH, "/tam report acme 2026-10")
    removed = await chat(TAM, NOWHERE_CH, "/tam account email acme remove ops@acme.example")
    assert "no longer receives the reports of acme" in removed.text
    await worker.run_once()
    assert smtp.received == []


async def test_recipients_are_validated_and_managed_by_staff_only(
        mail_ctx: AppContext, chat: Chat) -> None:
    async def say(user: str, line: str) -> str:
        return (await chat(user, NOWHERE_CH, line)).text

    assert "“ops@acme” is not an email address" in await say(
        TAM, "/tam account email acme add ops@acme")
    assert "is not an email address" in await say(
        TAM, "/tam account email acme add a@b.example,c@d.example")
    assert "“send” is not an action here; use one of: add, remove, list" in await say(
        TAM, "/tam account email acme send x@y.example")
    assert "not emailed to anyone" in await say(TAM, "/tam account email acme list")
    await say(TAM, "/tam account email acme add <mailto:Ops@Acme.example>")
    assert "already receives the reports of acme; nothing changed" in await say(
        TAM, "/tam account email acme add ops@acme.example")
    assert "emailed to 1 address: ops@acme.example" in await say(
        TAM, "/tam account email acme list")
    assert "is not a recipient of the reports of acme; nothing changed" in await say(
        TAM, "/tam account email acme remove cfo@acme.example")
    # business has no monthly report: no address to add
    assert "comes with Enterprise" in await say(
        ADMIN, "/tam account email bizco add ops@biz.example")
    # listed to staff only: a customer is refused every form of it
    for line in ("/tam account email acme list", "/tam account email acme add x@y.example"):
        refused = await chat(CUSTOMER, ACME_CH, line)
        assert refused.refused and "ops@acme.example" not in refused.text
    assert "ops@acme.example" not in await say(ENGINEER, "/tam account email acme list")
    assert "emailed to 1 address" in await say(TAM, "/tam account email acme list")


async def test_without_smtp_the_report_posts_and_says_email_is_off(
        chat: Chat, ctx: AppContext, worker: Worker, messenger: RecordingMessenger,
        clock: Clock) -> None:
    assert ctx.mailer is None
    reply = await chat(TAM, NOWHERE_CH, "/tam report acme 2026-10")
    assert "Email is off (no SMTP server is configured)" in reply.text
    await worker.run_once()
    assert any(s.target == ACME_CH and "Monthly service report" in s.text
               for s in messenger.sent)
    added = await chat(TAM, NOWHERE_CH, "/tam account email acme add ops@acme.example")
    assert "Email is off" in added.text
    await chat(TAM, NOWHERE_CH, "/tam language zh")
    zh = await chat(TAM, NOWHERE_CH, "/tam report acme 2026-09")
    assert "邮件未开启（未配置 SMTP 服务器）：月报仅发布到支持群。" in zh.text
    async with ctx.db.transaction() as s:
        assert await jobs.count(s, kind="report.email") == 0


async def test_a_skipped_account_gets_no_scheduled_report_and_says_so(
        mail_ctx: AppContext, chat: Chat, worker: Worker, smtp: SmtpServer, clock: Clock,
        messenger: RecordingMessenger) -> None:
    await chat(ADMIN, NOWHERE_CH, "/tam plan bizco upgrade enterprise confirm")
    await chat(ADMIN, NOWHERE_CH, "/tam account email bizco add ops@biz.example")
    await chat(TAM, NOWHERE_CH, "/tam account email acme add ops@acme.example")
    usage = await chat(TAM, NOWHERE_CH, "/tam account set acme report=skip")
    assert usage.refused and "reason=poc, dedicated" in usage.text
    bad = await chat(TAM, NOWHERE_CH, "/tam account set acme report=skip reason=trial")
    assert bad.refused and "“trial” is not one" in bad.text
    done = await chat(TAM, NOWHERE_CH, "/tam account set acme report=skip reason=poc")
    assert "skipped (proof-of-concept stage)" in done.text
    shown = (await chat(TAM, NOWHERE_CH, "/tam account show acme")).text
    assert "Monthly report: <b>skipped</b> (proof-of-concept stage)." in shown
    assert "Email: to 1 recipient." in shown
    await reports.ensure_schedule(mail_ctx)
    clock.now = utc(2026, 12, 1, 2, 0, 1)
    await worker.run_once()
    await worker.run_once()
    posts = [s.target for s in messenger.sent if "Monthly service report" in s.text
             or "企业服务月报" in s.text]
    assert posts == [BIZ_CH]
    assert [r.recipients for r in smtp.received] == [["ops@biz.example"]]
    assert "企业服务月报" in str(smtp.received[0].message["Subject"])
    zh_text = smtp.received[0].text("text/plain")
    seed = ["概要", "服务总结", "资源概况", "服务工单", "安全防护", "优化建议"]
    assert [zh_text.index(f"\n{h}\n") for h in seed] == sorted(
        zh_text.index(f"\n{h}\n") for h in seed)
    # on request it is still made, and staff are told the account is skipped
    asked = await chat(TAM, NOWHERE_CH, "/tam report acme 2026-11")
    assert "scheduled reports are skipped (proof-of-concept stage)" in asked.text
    again = await chat(TAM, NOWHERE_CH, "/tam account set acme report=send")
    assert "produced again" in again.text
    assert "produced on schedule" in (await chat(TAM, NOWHERE_CH,
                                                 "/tam account show acme")).text
    assert "were not skipped; nothing changed" in (
        await chat(TAM, NOWHERE_CH, "/tam account set acme report=send")).text


async def test_starttls_with_authentication_and_a_refused_login(
        ctx: AppContext, chat: Chat, worker: Worker, tmp_path: Path,
        messenger: RecordingMessenger) -> None:
    server_tls, client_tls, _ = tls_contexts(tmp_path)
    server = SmtpServer(tls=server_tls, credentials=("bot", "s3cret"))
    await server.start()
    try:
        ctx.settings = smtp_settings(ctx.settings, server, smtp_tls="starttls",
                                     smtp_user="bot", smtp_password="s3cret")
        ctx.mailer = SmtpMailer(ctx.settings, tls_context=client_tls)
        await chat(TAM, NOWHERE_CH, "/tam account email acme add ops@acme.example")
        await chat(TAM, NOWHERE_CH, "/tam report acme 2026-10")
        await worker.run_once()
        assert len(server.received) == 1 and server.logins == ["bot"]
        # a wrong password is a 535: permanent, staff told, never the password itself
        ctx.mailer = SmtpMailer(replace(ctx.settings, smtp_password="wrong"),
                                tls_context=client_tls)
        await chat(TAM, NOWHERE_CH, "/tam report acme 2026-09")
        await worker.run_once()
        async with ctx.db.transaction() as s:
            row = await jobs.get_by_key(s, "report-email:acme:2026-09:ops@acme.example")
        assert row is not None, row
        assert row.status == "done", (row.status, row.last_error, row.result)
        duty = [s.text for s in messenger.sent if s.target == "CDUTY"]
        assert len(duty) == 1 and "535" in duty[0] and "wrong" not in duty[0]
        assert len(server.received) == 1
    finally:
        await server.close()


async def test_implicit_tls(ctx: AppContext, chat: Chat, worker: Worker,
                            tmp_path: Path) -> None:
    server_tls, client_tls, _ = tls_contexts(tmp_path)
    server = SmtpServer(tls=server_tls, implicit_tls=True)
    await server.start()
    try:
        ctx.settings = smtp_settings(ctx.settings, server, smtp_tls="ssl")
        ctx.mailer = SmtpMailer(ctx.settings, tls_context=client_tls)
        await chat(TAM, NOWHERE_CH, "/tam account email acme add ops@acme.example")
        await chat(TAM, NOWHERE_CH, "/tam report acme 2026-10")
        await worker.run_once()
        assert [r.recipients for r in server.received] == [["ops@acme.example"]]
    finally:
        await server.close()


async def test_an_unreachable_server_delays_the_mail(
        mail_ctx: AppContext, chat: Chat, worker: Worker, smtp: SmtpServer,
        clock: Clock) -> None:
    await chat(TAM, NOWHERE_CH, "/tam account email acme add ops@acme.example")
    await chat(TAM, NOWHERE_CH, "/tam report acme 2026-10")
    await smtp.close()
    await worker.run_once()
    async with mail_ctx.db.transaction() as s:
        row = await jobs.get_by_key(s, "report-email:acme:2026-10:ops@acme.example")
        assert row is not None and row.status == "pending" and "unreachable" in str(
            row.last_error)
    back = SmtpServer()
    await back.start()
    try:
        assert mail_ctx.mailer is not None
        mail_ctx.mailer = SmtpMailer(replace(mail_ctx.settings, smtp_port=back.port))
        clock.advance(seconds=5)
        await worker.run_once()
        assert len(back.received) == 1
    finally:
        await back.close()


async def test_a_run_whose_lease_ran_out_does_not_send_beside_the_newer_claim(
        mail_ctx: AppContext, chat: Chat, smtp: SmtpServer, clock: Clock,
        messenger: RecordingMessenger) -> None:
    """Slow preparation (a blocked event loop) can outlive a lease: the job is claimed again,
    and only the newest claim may hand the mail over; the stale run stops untouched."""
    from bot.services.job import JobContext, LeaseLost

    await chat(TAM, NOWHERE_CH, "/tam account email acme add ops@acme.example")
    await chat(TAM, NOWHERE_CH, "/tam report acme 2026-10")
    lease = timedelta(seconds=30)
    async with mail_ctx.db.transaction() as s:
        first = next(j for j in await jobs.claim(s, clock.now, "w", lease, 10)
                     if j.kind == "report.email")
    clock.advance(seconds=31)  # the lease runs out while the first run prepares
    async with mail_ctx.db.transaction() as s:
        second = next(j for j in await jobs.claim(s, clock.now, "w", lease, 10)
                      if j.kind == "report.email")
    assert (first.id, first.attempts, second.attempts) == (second.id, 1, 2)
    ctx = JobContext(mail_ctx, messenger, clock.now, worker="w", lease=lease)
    with pytest.raises(LeaseLost):
        await reports.run_email(ctx, first)
    assert smtp.received == []
    result = await reports.run_email(ctx, second)
    assert result["message_id"] and len(smtp.received) == 1


async def test_the_commands_answer_in_chinese_for_chinese_staff(
        mail_ctx: AppContext, chat: Chat) -> None:
    await chat(TAM, NOWHERE_CH, "/tam language zh")

    async def say(line: str) -> str:
        return (await chat(TAM, NOWHERE_CH, line)).text

    assert "“ops@”不是邮箱地址" in await say("/tam account email acme add ops@")
    added = await say("/tam account email acme add ops@acme.example")
    assert added == "ops@acme.example 将通过邮件接收 acme 的月报。"
    listed = await say("/tam account email acme list")
    assert listed == "acme 的月报发送至 1 个邮箱：ops@acme.example"
    assert "acme 的月报已设为跳过（专属云）" in await say(
        "/tam account set acme report=skip reason=dedicated")
    shown = await say("/tam account show acme")
    assert "月报：<b>已跳过</b>（专属云）。" in shown and "邮件：发送至 1 个收件人。" in shown
    queued = await say("/tam report acme 2026-10")
    assert "同时将通过邮件发送给 1 个收件人。" in queued
    assert "注意：acme 的定期月报已设为跳过（专属云）；本次为按需生成。" in queued
