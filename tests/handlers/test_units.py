"""Handlers one at a time: a feature module's functions imported and called alone, without
the router or a chat platform; and the one place they are all registered."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import Settings, load_catalog
from bot.domain.billing import ChangeKind, Quote, format_money
from bot.domain.model import Account, Case, CaseStatus, Lang, Role, Severity, Term, Tier
from bot.i18n import Translator
from bot.messages import mark, time_token
from bot.services.base import Actor, AppContext, Refusal
from handlers import (
    HELP_ORDER,
    accounts,
    advisories,
    build_router,
    cases,
    home,
    perks,
    plans,
    reports,
)
from handlers.core import Call, Request, Router, UsageError
from storage.db import Database

EN = Translator(Lang.EN)
NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def a_case(**changes: object) -> Case:
    fields: dict[str, object] = dict(
        id=1, ref="CS-1001", account_key="acme", team_id="T1", channel_id="CACME",
        opener_user_id="UCUST", severity=Severity.S2, requested_severity=Severity.S2,
        summary="db down", description="", region=None, software=None,
        status=CaseStatus.OPEN, opened_at=NOW - timedelta(hours=1),
        due_at=NOW - timedelta(minutes=30), target_label="30m", sla_generation=1)
    fields.update(changes)
    return Case(**fields)  # type: ignore[arg-type]


ACME = Account(key="acme", name="Acme Corp", tier=Tier.ENTERPRISE, term=Term.ANNUAL,
               start=date(2026, 1, 1), end=date(2027, 1, 1), region="cn-north-4",
               timezone="Asia/Shanghai", lang=Lang.EN)


def test_case_line_renders_neutral_markup_and_the_breach_mark() -> None:
    case = a_case(breached=True)
    line = cases.case_line(EN, case, NOW)
    assert line.startswith("<b>CS-1001</b> [S2] db down")
    assert time_token(case.due_at) in line
    assert line.endswith(" " + mark("breach"))
    # lists that lead with their own mark ask for none at the end
    assert mark("breach") not in cases.case_line(EN, case, NOW, flag=False)


def test_case_line_of_an_answered_case_shows_when_and_no_mark() -> None:
    answered = NOW - timedelta(minutes=40)
    line = cases.case_line(EN, a_case(breached=True, first_response_at=answered), NOW)
    assert "answered " + time_token(answered) in line
    assert "<mark:" not in line


def test_render_quote_shows_the_rule_and_the_money() -> None:
    q = Quote(kind=ChangeKind.UPGRADE, account_key="acme", old_tier=Tier.BUSINESS,
              new_tier=Tier.ENTERPRISE, on=date(2026, 6, 1), unused_old=10_000,
              new_base=35_000, incremental=None)
    text = plans.render_quote(EN, "CNY", q, applied=False)
    assert text.splitlines()[0].startswith("<b>Quote</b> — upgrade acme")
    assert f"<b>Charge now: {format_money(25_000, 'CNY')}</b>" in text
    assert EN("plan.upgrade_perks_note") in text
    assert "*" not in text and "`" not in text  # neutral markup only


def test_render_tags_lists_every_kind_and_a_dash_for_none() -> None:
    text = accounts.render_tags(EN, {"region": ["cn-north-4"], "product": [], "software": []})
    assert "regions: cn-north-4" in text and "products: —" in text


@pytest.fixture
def app(tmp_path: Path) -> Iterator[AppContext]:
    # no handler below reaches the database: the engine is created but never connects
    yield AppContext(db=Database(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}"),
                     catalog=load_catalog(None), settings=Settings(), clock=lambda: NOW)


def call_of(app: AppContext, args: list[str], *, account: Account | None = ACME,
            role: Role | None = None, can_open_form: bool = False) -> Call:
    req = Request(root="support", text=" ".join(args), team_id="T1", channel_id="CACME",
                  user_id="UCUST", can_open_form=can_open_form)
    return Call(req=req, args=args, actor=Actor("T1", "UCUST", role), app=app, t=EN,
                account=account)


async def test_scope_handler_alone_says_whether_the_plan_covers_it(app: AppContext) -> None:
    reply = await plans.scope(call_of(app, ["nginx"]))
    assert reply.text.startswith("<b>Nginx</b>")
    assert EN("scope.covered", tier=EN("tier.enterprise")) in reply.text
    unbound = await plans.scope(call_of(app, ["nginx"], account=None))
    assert EN("scope.which_tiers") in unbound.text


async def test_open_without_arguments_offers_the_form_or_asks(app: AppContext) -> None:
    reply = await cases.open_case(call_of(app, [], can_open_form=True))
    assert reply.form is not None and reply.form.kind == "open_case"
    with pytest.raises(UsageError) as err:
        await cases.open_case(call_of(app, []))
    assert err.value.msg_id == "case.need_severity"
    with pytest.raises(Refusal) as refused:
        await cases.open_case(call_of(app, [], account=None, can_open_form=True))
    assert refused.value.msg_id == "case.unbound"


async def test_handlers_refuse_bad_arguments_before_any_use_case(app: AppContext) -> None:
    with pytest.raises(UsageError) as err:
        await perks.escort(call_of(app, ["2026-13-01"]))
    assert (err.value.msg_id, err.value.params) == ("error.bad_date", {"given": "2026-13-01"})
    with pytest.raises(UsageError) as err:
        await cases.regrade(call_of(app, ["CS-1001", "S9"], role=Role.ENGINEER))
    assert err.value.msg_id == "error.bad_severity"
    with pytest.raises(UsageError) as err:
        await reports.report(call_of(app, ["acme", "2026-13"], role=Role.TAM))
    assert err.value.msg_id == "usage.bad_month"
    with pytest.raises(Refusal) as refused:
        await plans.show_plan(call_of(app, [], account=None))
    assert refused.value.msg_id == "case.unbound"


@pytest.mark.parametrize("module", [cases, perks, plans, accounts, advisories, reports, home])
def test_a_feature_module_registers_alone(module: object) -> None:
    router = Router()
    module.register(router)  # type: ignore[attr-defined]
    assert router.commands or router.events
    for cmd in router.commands:
        assert cmd.handler.__module__ == module.__name__  # type: ignore[attr-defined]


def test_help_lists_every_command_in_the_stated_order() -> None:
    router = build_router()
    for root in router.roots():
        visible = [" ".join(c.path) for c in router.commands
                   if c.root == root and c.path and not c.hidden]
        assert visible == list(HELP_ORDER[root])  # every command placed, none stale
    staff = Actor("T1", "UADMIN", Role.ADMIN)
    lines = router.help_text("support", EN, staff).splitlines()
    assert lines[1].startswith("• <code>/support plan</code>")
    assert lines[-4].startswith("• <code>/support cancel <request-id></code>")
    assert lines[-3].startswith("Chinese command words work too: 帮助 (help), 开单 (open)")
    # after the severities, where the hotline and the enterprise line are (seed §3, §5.1)
    assert lines[-1] == ("Hotline 4000-955-988 or 950808 (7x24) for every plan; Business and "
                         "Enterprise also have the enterprise phone line: 4000-955-988 or "
                         "950808, then press 1 and 2 (7x24).")
