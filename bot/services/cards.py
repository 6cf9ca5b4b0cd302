"""The case card as a platform-neutral view model, with its plain-text rendering."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.domain.catalog import Target
from bot.domain.model import Case, CaseStatus, Lang
from bot.i18n import Translator, time_token


@dataclass(frozen=True)
class CaseCard:
    case_id: int
    ref: str
    severity: str
    severity_alias: str
    summary: str
    opener: str
    status: CaseStatus
    target_label: str
    due_at: datetime
    breached: bool
    escort: bool
    first_response_at: datetime | None
    first_response_by: str | None
    lang: Lang

    @classmethod
    def of(cls, case: Case, lang: Lang) -> CaseCard:
        return cls(case_id=case.id, ref=case.ref, severity=case.severity.value,
                   severity_alias=case.severity.alias, summary=case.summary,
                   opener=case.opener_user_id, status=case.status,
                   target_label=case.target_label, due_at=case.due_at, breached=case.breached,
                   escort=case.escort, first_response_at=case.first_response_at,
                   first_response_by=case.first_response_by, lang=lang)

    @property
    def awaiting(self) -> bool:
        return self.status is CaseStatus.OPEN

    def title(self, t: Translator) -> str:
        return t("card.title", ref=self.ref, sev=self.severity,
                 alias=t(f"severity.{self.severity}"), summary=self.summary)

    def fields(self, t: Translator) -> list[tuple[str, str]]:
        """(label, value) pairs shown on the card, in order."""
        status = t(f"status.{self.status.value}")
        if self.breached:  # stays on the card after a late answer: the SLA was missed
            status = t("card.breached") + " · " + status
        rows = [
            (t("card.status"), status),
            (t("card.opener"), f"<@{self.opener}>"),
            (t("card.target"), t("card.target_value",
                                 target=t.target(Target.parse_label(self.target_label)))
             + (" · " + t("card.escort") if self.escort else "")),
            (t("card.due"), time_token(self.due_at)),
        ]
        if self.first_response_at is not None:
            rows.append((t("card.first_response"),
                         f"{time_token(self.first_response_at)} <@{self.first_response_by}>"))
        return rows

    def text(self) -> str:
        """Plain text: notification fallback and the console's rendering."""
        t = Translator(self.lang)
        lines = [self.title(t)]
        lines += [f"{label}: {value}" for label, value in self.fields(t)]
        return "\n".join(lines)
