"""What the seed promises, word for word (issue 13 points 1, 2, 5, 6, 7): the service area,
the hotline and the enterprise line, the severity self-assessment note, what an escort day
includes, where to ask about software outside the table, what the next tier adds, pending
perks said as pending, the month's fee estimate, the split of a month of tier change, and the
quote customers may ask for. English and Chinese, with the seed's own figures."""

from __future__ import annotations

from datetime import date

import pytest

from bot.adapters.slack.views import advisory_modal, open_case_modal
from bot.config import load_catalog
from bot.domain.billing import SplitBasis, split_incremental, usage_before
from bot.domain.model import Account, Lang, Term, Tier
from bot.i18n import Translator
from bot.services.base import AppContext
from bot.worker import Worker
from handlers.plans import render_plan
from storage.repos import Accounts, Cases, PlanChanges
from testkit.chat import ACME_CH, ADMIN, BIZ_CH, CUSTOMER, NOWHERE_CH, TAM, Chat
from testkit.fakes import RecordingMessenger, drain

EN, ZH = Translator(Lang.EN), Translator(Lang.ZH)
CATALOG = load_catalog(None)
HOTLINE = "4000-955-988 or 950808"
ENTERPRISE_LINE = "4000-955-988 or 950808, then press 1 and 2"
USD = 100

PARIS_CH = "CPARIS"
PARIS_NOTICE = ("Region eu-paris is outside the support plan's service area (Europe-Paris and "
                "North America-Atlanta are not covered). The case is open, but for service on "
                f"resources there please contact us: hotline {HOTLINE} (7x24) or a product "
                "ticket.")
SEVERITY_NOTE = ("<mark:warning> Grade the severity objectively: keep S1 (core production down) "
                 "and S2 (production down) for problems that stop production or cannot be "
                 "solved otherwise, and plan ahead instead of using a high severity for "
                 "guidance. A severity that does not match the problem may not be answered at "
                 "that level.")
ESCORT = ("An escort day includes: capacity confirmation before the event; during it, 7x24 "
          "back-end patrol, an IM war-room group, a named TAM and urgent events answered in "
          "under 10 minutes. For a longer, deeper escort, buy the escort service standard "
          "edition.")


@pytest.fixture
async def paris(chat: Chat) -> Chat:
    """An enterprise account in Paris, outside the service area (seed §3), with its group."""
    await chat(ADMIN, NOWHERE_CH, "/tam account add paris enterprise annual "
                                  "start=2026-01-01 region=eu-paris")
    await chat(ADMIN, NOWHERE_CH, f"/tam account assign paris <user:{TAM}>")
    await chat(TAM, PARIS_CH, "/tam link paris")
    return chat


# --- point 2: the service area


async def test_staff_are_told_when_they_add_or_link_an_account_outside_the_service_area(
        chat: Chat) -> None:
    note = ("<mark:warning> Region na-atlanta is outside the support plan's service area "
            "(Europe-Paris, North America-Atlanta). atl's cases for it open with a notice that "
            "asks the customer to contact us (hotline or product ticket).")
    added = await chat(ADMIN, NOWHERE_CH, "/tam account add atl business monthly "
                                          "start=2026-11-01 region=na-atlanta")
    assert added.text.splitlines()[1:] == [note]
    linked = await chat(ADMIN, "CATL", "/tam link atl")
    assert linked.text.splitlines() == ["This channel is now the support group of atl.", note]
    # a region inside the area: no note
    inside = await chat(ADMIN, NOWHERE_CH, "/tam account add hk business monthly "
                                           "region=ap-southeast-1")
    assert len(inside.text.splitlines()) == 1
    await chat(ADMIN, NOWHERE_CH, "/tam language zh")
    zh = await chat(ADMIN, "CATL2", "/tam link atl")
    assert "区域 na-atlanta 不在支持计划服务区域内（欧洲-巴黎、北美-亚特兰大）" in zh.text


async def test_plan_of_an_account_outside_the_service_area_says_so(paris: Chat) -> None:
    plan = (await paris(CUSTOMER, PARIS_CH, "/support plan")).text.splitlines()
    assert plan[1] == ("<mark:warning> Region eu-paris is outside the support plan's service "
                       f"area. For service on resources there, please contact us: hotline "
                       f"{HOTLINE} (7x24) or a product ticket.")
    assert "outside" not in (await paris(CUSTOMER, ACME_CH, "/support plan")).text


async def test_every_case_for_an_excluded_region_carries_the_notice(
        paris: Chat, ctx: AppContext, worker: Worker, messenger: RecordingMessenger) -> None:
    await drain(worker, rounds=3)
    messenger.sent.clear()
    # the account's own region: no region= needed
    reply = await paris(CUSTOMER, PARIS_CH, "/support open S3 disk latency on ecs-1")
    assert reply.text.splitlines()[1] == PARIS_NOTICE
    await drain(worker, rounds=3)
    card = next(s for s in messenger.sent if s.kind == "post" and s.target == PARIS_CH
                and "CS-1001" in s.text and s.thread_ts is None)
    assert any(f.label == "Region" and f.value ==
               "<mark:warning> eu-paris: outside the service area; please contact us through "
               f"the hotline {HOTLINE} or a product ticket"
               for sec in card.message.sections for f in sec.fields)
    assert PARIS_NOTICE in messenger.texts("post", PARIS_CH)  # in the case's thread
    staff = ("New case CS-1001 for paris (paris), S3, first response due <t:1795496400>: disk "
             "latency on ecs-1. <mark:warning> Region eu-paris is outside the service area: "
             "the customer was asked to contact us through the hotline or a product ticket.")
    assert [t.splitlines()[0] for t in messenger.texts("post", "CDUTY")] == [staff]
    assert [t.splitlines()[0] for t in messenger.texts("dm", TAM)] == [staff]
    # region= names another region: Atlanta from acme's group, Shanghai from Paris's
    atl = await paris(CUSTOMER, ACME_CH, "/support open S4 backup job fails region=na-atlanta")
    assert "Region na-atlanta is outside the support plan's service area" in atl.text
    inside = await paris(CUSTOMER, PARIS_CH, "/support open S4 cdn purge slow region=cn-east-3")
    assert "outside" not in inside.text
    async with ctx.db.transaction() as s:
        regions = [(await Cases(s).get(n)) for n in (1, 2, 3)]
    assert [(c.region, c.summary) for c in regions if c] == [
        ("eu-paris", "disk latency on ecs-1"), ("na-atlanta", "backup job fails"),
        ("cn-east-3", "cdn purge slow")]
    # in Chinese for a Chinese group
    zh = await paris(CUSTOMER, BIZ_CH, "/support open S4 对象存储访问慢 region=eu-paris")
    assert ("区域 eu-paris 不在支持计划服务区域内（不含欧洲-巴黎、北美-亚特兰大）。"
            "案例已提交；如需该区域资源的服务，请联系我们："
            "热线电话 4000-955-988或950808（7x24小时）或云产品工单。") in zh.text


@pytest.mark.parametrize(("line", "expected"), [
    ("/support open S3 db slow region=mars", "“mars” is not a region we know. Regions: "
     "ap-southeast-1, ap-southeast-3, cn-east-3, cn-north-4, cn-south-1, eu-paris, na-atlanta."),
    ("/support open S3 db slow region=", "Give the region after region=, e.g. "
     "region=cn-north-4."),
    ("/support open region=cn-north-4", "Say how severe it is"),
])
async def test_a_bad_region_is_refused_naming_the_regions_and_opens_nothing(
        chat: Chat, ctx: AppContext, line: str, expected: str) -> None:
    reply = await chat(CUSTOMER, ACME_CH, line)
    assert reply.refused and expected in reply.text
    async with ctx.db.transaction() as s:
        assert await Cases(s).get(1) is None


# --- point 5: the hotline, the severity note, escort days, software elsewhere, the next tier


async def test_the_hotline_numbers_where_the_bot_points_to_the_hotline(chat: Chat) -> None:
    unbound = await chat(CUSTOMER, NOWHERE_CH, "/support open S2 checkout down")
    assert (f"call the hotline {HOTLINE} (7x24; Business and Enterprise plans: the enterprise "
            f"line, {ENTERPRISE_LINE})") in unbound.text
    await chat(ADMIN, NOWHERE_CH, "/tam language zh")
    zh_unbound = await chat(ADMIN, NOWHERE_CH, "/support open S2 订单接口不可用")
    assert "热线电话 4000-955-988或950808（7x24小时；商业级和企业级可拨打企业电话专线 " \
        "4000-955-988或950808按1转2）" in zh_unbound.text
    await chat(ADMIN, NOWHERE_CH, "/tam language en")
    lower = await chat(ADMIN, "CDEV", "/tam link devco")
    assert f"the hotline {HOTLINE} (7x24), or upgrade to Business" in lower.text
    help_text = (await chat(CUSTOMER, ACME_CH, "/support help")).text
    assert f"enterprise phone line: {ENTERPRISE_LINE} (7x24)" in help_text
    plan = (await chat(CUSTOMER, ACME_CH, "/support plan")).text
    assert (f"Channels: hotline {HOTLINE} (7x24), product tickets (7x24), enterprise phone "
            f"line {ENTERPRISE_LINE} (7x24)") in plan
    zh = (await chat(CUSTOMER, BIZ_CH, "/support plan")).text
    assert "热线电话 4000-955-988或950808（7x24小时）" in zh
    assert "企业电话专线 4000-955-988或950808按1转2（7x24小时）" in zh
    assert "4000-955-988或950808按1转2" in (await chat(CUSTOMER, BIZ_CH, "/support help")).text


async def test_the_severity_note_on_the_form_in_help_and_after_s1_and_s2(chat: Chat) -> None:
    form = await chat(CUSTOMER, ACME_CH, "/support open", can_open_form=True)
    assert form.form is not None and form.form.description == SEVERITY_NOTE
    modal = open_case_modal(Lang.EN, ACME_CH, description=form.form.description)
    assert modal["blocks"][0]["type"] == "context"
    assert "*S1*" not in modal["blocks"][0]["elements"][0]["text"]
    assert ":warning: Grade the severity objectively" in modal["blocks"][0]["elements"][0]["text"]
    assert advisory_modal(Lang.EN, "C1", [], description="x")["blocks"][0]["type"] == "context"
    help_line = next(line for line in (await chat(CUSTOMER, ACME_CH, "/support help")).text
                     .splitlines() if "/support open" in line)
    assert "keep S1 and S2 for production impact; an inflated severity may not be answered" \
        in help_line
    s1 = await chat(CUSTOMER, ACME_CH, "/support open S1 payments down")
    assert s1.text.splitlines()[-1] == SEVERITY_NOTE
    s2 = await chat(CUSTOMER, ACME_CH, "/support open prod-down orders API down")
    assert s2.text.splitlines()[-1] == SEVERITY_NOTE
    s3 = await chat(CUSTOMER, ACME_CH, "/support open S3 slow page")
    assert "objectively" not in s3.text
    zh = await chat(CUSTOMER, BIZ_CH, "/support open S2 订单接口不可用")
    assert "请客观评估问题级别" in zh.text and "不保证按所提交级别响应" in zh.text


async def test_what_an_escort_day_includes_in_the_plan_and_the_confirmation(
        chat: Chat) -> None:
    assert ESCORT in (await chat(CUSTOMER, ACME_CH, "/support plan")).text.splitlines()
    reply = await chat(CUSTOMER, ACME_CH, "/support escort 2026-12-10 1")
    assert reply.text.splitlines()[-1] == ESCORT
    review = await chat(CUSTOMER, ACME_CH, "/support review availability 2026-12-10")
    assert "escort day" not in review.text
    zh = (await chat(CUSTOMER, BIZ_CH, "/support plan")).text
    assert ("护航服务每天包括：活动前的容量确认；"
            "活动中7x24小时后台巡检、IM保障群、指定的技术服务经理，"
            "紧急事件响应时长小于10分钟。"
            "如需更长时间的深度护航，请购买云上保障护航服务（标准版）。") in zh


async def test_software_outside_the_table_is_pointed_to_its_vendor_and_community(
        chat: Chat) -> None:
    reply = (await chat(CUSTOMER, ACME_CH, "/support scope redis")).text
    assert ("For software outside this list, please ask the software's vendor or its community "
            "for support; you can also buy third-party software or services in the cloud "
            "marketplace, or ask in the official forum of the cloud community.") in reply
    zh = (await chat(CUSTOMER, BIZ_CH, "/support scope redis")).text
    assert ("请向软件供应商或相关社区寻求支持；"
            "也可以在云市场购买第三方软件或服务，或在云社区的官方论坛上寻求帮助") in zh
    assert "vendor or its community" not in (await chat(CUSTOMER, ACME_CH,
                                                         "/support scope nginx")).text


def _account(tier: Tier) -> Account:
    return Account(key="x", name="X", tier=tier, term=Term.MONTHLY, start=date(2026, 11, 1),
                   end=date(2026, 12, 1), region="cn-north-4", timezone="Asia/Shanghai",
                   lang=Lang.EN)


@pytest.mark.parametrize(("tier", "en", "zh"), [
    (Tier.DEVELOPER, "Business adds: enterprise phone line, IM enterprise group, faster response "
     "(S1 < 10 min), escort service (basic edition)",
     "升级至商业级可增加：企业电话专线、IM企业群、更快的响应（S1 < 10 分钟）、"),
    (Tier.BUSINESS, "Enterprise adds: dedicated TAM, availability check",
     "升级至企业级可增加：专属技术服务经理、可用性检查"),
    (Tier.BASIC, "Developer adds: faster response (S2 < 30 min, S3 < 3 h, S4 < 8 h, S5 < 16 h), "
     "third-party software support", "升级至开发者级可增加：更快的响应（S2 < 30"),
])
def test_the_next_tier_line_names_its_channels_and_targets(tier: Tier, en: str,
                                                           zh: str) -> None:
    assert en in render_plan(EN, CATALOG, _account(tier), [])
    assert zh in render_plan(ZH, CATALOG, _account(tier), [])


# --- point 6: the month's fee estimate, and the split of a month of tier change


async def test_usage_answers_with_the_months_fee_estimate(chat: Chat) -> None:
    # business on 200,000: 10 % of 9,000 + 7 % of 63,000 + 5 % of 128,000 = 11,710.00;
    # the base fee 90.00 is prepaid, the incremental fee 11,620.00 comes next month
    reply = await chat(TAM, NOWHERE_CH, "/tam account usage bizco 2026-11 200000")
    assert reply.text.splitlines() == [
        "bizco: consumption for 2026-11 recorded as USD 200,000.00.",
        "bizco, 2026-11 (Business): base fee USD 90.00 + incremental fee USD 11,620.00 = "
        "<b>USD 11,710.00</b> (consumption USD 200,000.00, the month's figure)."]
    # the account alone: this month's estimate
    assert (await chat(TAM, NOWHERE_CH, "/tam account usage bizco")).text == \
        reply.text.splitlines()[1]
    none = await chat(TAM, NOWHERE_CH, "/tam account usage acme 2026-10")
    assert none.text.startswith("acme, 2026-10 (Enterprise): base fee USD 13,500.00; no "
                                "consumption recorded yet")
    # day figures add up while the month's figure is missing: enterprise on 150,000 is
    # 10 % of 135,000 + 7 % of 15,000 = 14,550.00, of which 1,050.00 over the base fee
    await chat(TAM, NOWHERE_CH, "/tam account usage acme 2026-11-01 100000")
    days = await chat(TAM, NOWHERE_CH, "/tam account usage acme 2026-11-02 50000")
    assert days.text.splitlines()[-1] == (
        "acme, 2026-11 (Enterprise): base fee USD 13,500.00 + incremental fee USD 1,050.00 = "
        "<b>USD 14,550.00</b> (consumption USD 150,000.00, the sum of 2 day figures).")
    for bad in ("2026-13", "2026-11-31", "11/2026"):
        refused = await chat(TAM, NOWHERE_CH, f"/tam account usage acme {bad} 1")
        assert refused.refused and "is not a month or a day" in refused.text
    await chat(ADMIN, NOWHERE_CH, "/tam language zh")
    zh = await chat(ADMIN, NOWHERE_CH, "/tam account usage bizco")
    assert zh.text == ("bizco，2026-11（商业级）：基础支持费 USD 90.00 + "
                       "增量支持费 USD 11,620.00 = "
                       "<b>USD 11,710.00</b>（消费 USD 200,000.00，按月度金额）。")


def test_split_follows_each_tiers_days_usage_when_daily_usage_is_known() -> None:
    on = date(2026, 11, 24)  # 23 days business, 7 days enterprise
    daily = {date(2026, 11, d): 2_000 * USD for d in range(1, 24)}
    assert usage_before(daily, on) == 46_000 * USD
    split = split_incremental(CATALOG, Tier.BUSINESS, Tier.ENTERPRISE, on, 200_000 * USD,
                              usage_before(daily, on))
    # business incremental 11,620.00 x 46,000 / 200,000; enterprise 4,550.00 x 154,000 / 200,000
    assert (split.basis, split.usage_old, split.usage_new) == (
        SplitBasis.USAGE, 46_000 * USD, 154_000 * USD)
    assert (split.old_amount, split.new_amount) == (267_260, 350_350)
    # one day missing: prorated by days (11,620.00 x 23/30, 4,550.00 x 7/30)
    del daily[date(2026, 11, 5)]
    assert usage_before(daily, on) is None
    prorated = split_incremental(CATALOG, Tier.BUSINESS, Tier.ENTERPRISE, on, 200_000 * USD,
                                 usage_before(daily, on))
    assert (prorated.basis, prorated.old_amount, prorated.new_amount) == (
        SplitBasis.DAYS, 890_867, 106_167)
    # on the 1st there are no old days: all of it is the new tier's
    assert usage_before(daily, date(2026, 11, 1)) is None


async def test_the_quote_says_which_split_it_used(chat: Chat) -> None:
    await chat(TAM, NOWHERE_CH, "/tam account usage bizco 2026-11 200000")
    prorated = (await chat(ADMIN, NOWHERE_CH, "/tam plan bizco upgrade enterprise")).text
    assert ("• This month's incremental fee, prorated by days (no day figures for all of the old "
            "tier's days): Business 23 days USD 8,908.67 + Enterprise 7 days USD 1,061.67") \
        in prorated
    for day in range(1, 24):
        await chat(TAM, NOWHERE_CH, f"/tam account usage bizco 2026-11-{day:02d} 2000")
    by_usage = (await chat(ADMIN, NOWHERE_CH, "/tam plan bizco upgrade enterprise")).text
    assert ("• This month's incremental fee, split by the usage of each tier's days: Business "
            "23 days (consumption USD 46,000.00) USD 2,672.60 + Enterprise 7 days (consumption "
            "USD 154,000.00) USD 3,503.50") in by_usage
    await chat(ADMIN, NOWHERE_CH, "/tam language zh")
    zh = (await chat(ADMIN, NOWHERE_CH, "/tam plan bizco upgrade enterprise")).text
    assert "本月增量费用，按各级别对应天数的实际消费分摊：商业级 23 天（消费 USD 46,000.00）" in zh
    await chat(ADMIN, NOWHERE_CH, "/tam language en")
    # once applied, the month's estimate shows the same split
    await chat(ADMIN, NOWHERE_CH, "/tam plan bizco upgrade enterprise confirm")
    estimate = (await chat(TAM, NOWHERE_CH, "/tam account usage bizco")).text.splitlines()
    assert estimate[0].startswith("bizco, 2026-11 (Enterprise): base fee USD 13,500.00")
    assert estimate[1] == by_usage.splitlines()[4]


# --- point 7: the quote a customer may ask for


async def test_customers_get_the_staff_quote_read_only(chat: Chat, ctx: AppContext) -> None:
    staff = (await chat(ADMIN, NOWHERE_CH, "/tam plan acme downgrade business")).text
    reply = await chat(CUSTOMER, ACME_CH, "/support plan quote downgrade business")
    quote = staff.splitlines()[:-1]  # the staff quote without its confirm hint
    # the same figures; where staff are told how to record consumption, the customer reads
    # how the incremental fee is charged
    assert quote[4].startswith("• This month's incremental fee: no consumption figure yet. "
                               "Record one with <code>/tam account usage</code>")
    quote[4] = ("• This month's incremental fee: no consumption figure recorded yet; it is "
                "charged at the start of next month on this month's consumption.")
    assert reply.text.splitlines() == [*quote, "This is a quote only; nothing was changed. "
                                       "Your TAM or an admin applies a plan change."]
    assert quote[0] == "<b>Quote</b> — downgrade acme from Enterprise to Business on 2026-11-24:"
    assert reply.buttons == () and "confirm" not in reply.text
    zh = await chat(CUSTOMER, BIZ_CH, "/support plan quote upgrade enterprise")
    assert zh.text.startswith("<b>报价</b>") and zh.text.endswith(
        "以上仅为报价，未做任何变更。支持计划变更由您的 TAM 或管理员执行。")
    refused = await chat(CUSTOMER, BIZ_CH, "/support plan quote downgrade enterprise")
    assert refused.refused
    for line, expected in (
            ("/support plan quote upgrade", "Say which change to price"),
            ("/support plan quote unsubscribe", "Say which change to price"),
            ("/support plan quote upgrade platinum", "“platinum” is not a tier"),
            ("/support plan quote confirm", "Say which change to price")):
        bad = await chat(CUSTOMER, ACME_CH, line)
        assert bad.refused and expected in bad.text, line
    unbound = await chat(CUSTOMER, NOWHERE_CH, "/support plan quote upgrade enterprise")
    assert unbound.refused and "not a support group" in unbound.text
    async with ctx.db.transaction() as s:
        assert (await Accounts(s).get("acme")).tier is Tier.ENTERPRISE  # type: ignore[union-attr]
        assert await PlanChanges(s).for_account("acme") == []
