"""Platform-neutral command handlers, one module per feature; `build_router()` is the one
place they are registered.

Each feature module (`cases`, `perks`, `plans`, `accounts`, `advisories`, `reports`, `home`)
holds module-level handlers `(call: Call) -> Reply`, the functions that render their replies,
and a `register(router)` that only registers them.
"""

from __future__ import annotations

from handlers import accounts, advisories, cases, home, incidents, perks, plans, reports
from handlers.core import Command, Router

# The order `help` lists each root's commands in. A module registers its own commands
# together, while help reads by task across features (`plan` first, `scope` after the case
# commands, ...), so the order is stated here once; a command not listed goes last.
HELP_ORDER: dict[str, tuple[str, ...]] = {
    "support": ("plan", "plan quote", "open", "cases", "sla", "case", "close", "incident",
                "scope", "escort", "review", "requests", "acknowledge", "cancel"),
    "tam": ("staff add", "language", "account add", "account assign", "account show", "link",
            "ack", "severity", "resolve", "account usage", "account renew", "approve", "reject",
            "plan", "account tag", "advisory", "advisory status", "advisories", "report",
            "account email", "account set", "breaches", "incident declare", "incident update",
            "incident resolve", "incident link", "incident unlink", "incident list"),
}


def _help_position(cmd: Command) -> int:
    order = HELP_ORDER.get(cmd.root, ())
    path = " ".join(cmd.path)
    return order.index(path) if path in order else len(order)


def build_router() -> Router:
    router = Router()
    for module in (cases, home, perks, plans, accounts, advisories, reports, incidents):
        module.register(router)
    # a stable sort: within a root, listed commands in help order, the rest as registered
    router.commands.sort(key=lambda c: (c.root, _help_position(c)))
    return router
