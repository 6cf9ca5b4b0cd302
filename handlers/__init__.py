"""Platform-neutral command handlers; `build_router()` is the one place they are registered."""

from __future__ import annotations

from handlers import cases, home, support, tam
from handlers.core import Router


def build_router() -> Router:
    router = Router()
    support.register(router)
    cases.register(router)
    home.register(router)
    tam.register(router)
    return router
