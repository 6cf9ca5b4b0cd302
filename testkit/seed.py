"""Seed helpers for tests that run the bot in child processes: a catalog with a
seconds-long S1 target and a small world written straight to the database."""

from __future__ import annotations

from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

import yaml

from bot.config import Settings, load_catalog
from bot.domain.model import Account, Lang, Role, StaffMember, Term, Tier
from bot.services.base import AppContext
from storage.db import Database
from storage.repos import Accounts, Bindings, Staff

ACME = "CACME"  # the acme support group


def fast_catalog(tmp_path: Path) -> Path:
    """The built-in catalog with enterprise S1 at 4 s (near-breach at 50 %)."""
    data = yaml.safe_load((resources.files("bot.domain") / "catalog.yaml").read_text("utf-8"))
    data["sla"]["near_breach_ratio"] = 0.5
    data["tiers"]["enterprise"]["response"]["S1"] = {"seconds": 4}
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data), "utf-8")
    return path


async def seed_groups(url: str, n: int) -> None:
    """n more enterprise accounts, each with one group `CK00`.. (broadcast targets)."""
    db = Database(url)
    now = datetime.now(UTC)
    async with db.transaction() as s:
        for i in range(n):
            await Accounts(s).add(Account(key=f"k{i:02d}", name=f"K{i}", tier=Tier.ENTERPRISE,
                                          term=Term.ANNUAL, start=date(2026, 1, 1),
                                          end=date(2027, 1, 1), region="cn-north-4",
                                          timezone="Asia/Shanghai", lang=Lang.EN,
                                          team_id="T1"), now)
            await Bindings(s).bind("T1", f"CK{i:02d}", f"k{i:02d}", "seed", now)
    await db.close()


async def seed_world(url: str) -> None:
    db = Database(url)
    await db.upgrade()
    ctx = AppContext(db=db, catalog=load_catalog(None), settings=Settings())
    now = ctx.clock()
    async with db.transaction() as s:
        await Staff(s).upsert(StaffMember("T1", "UTAM", Role.TAM), "test", now)
        await Accounts(s).add(Account(key="acme", name="Acme", tier=Tier.ENTERPRISE,
                                      term=Term.ANNUAL, start=date(2026, 1, 1),
                                      end=date(2027, 1, 1), region="cn-north-4",
                                      timezone="Asia/Shanghai", lang=Lang.EN,
                                      tam_user_id="UTAM", team_id="T1"), now)
        await Bindings(s).bind("T1", ACME, "acme", "test", now)
    await db.close()
