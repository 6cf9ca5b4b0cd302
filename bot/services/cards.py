"""The case card: one neutral message per case, posted once and updated in place."""

from __future__ import annotations

from collections.abc import Sequence

from bot.domain.catalog import Target
from bot.domain.model import Case, CaseStatus, Lang
from bot.i18n import Translator
from bot.messages import Button, Field, Message, Section, mention, time_token


def card_message(case: Case, lang: Lang, excluded: bool = False,
                 incidents: Sequence[str] = ()) -> Message:
    """The card: title line, status/opener/target/due (and first response, linked
    incidents) fields, the buttons that still make sense (acknowledge while waiting,
    close while active), a hint. `excluded`: the case's region is outside the service area,
    said in a field."""
    t = Translator(lang)
    status = t(f"status.{case.status.value}")
    if case.breached:  # stays on the card after a late answer: the SLA was missed
        status = t("card.breached") + " · " + status
    target = t("card.target_value", target=t.target(Target.parse_label(case.target_label)))
    if case.escort:
        target += " · " + t("card.escort")
    fields = [Field(t("card.status"), status),
              Field(t("card.opener"), mention(case.opener_user_id)),
              Field(t("card.target"), target),
              Field(t("card.due"), time_token(case.due_at))]
    if excluded:
        fields.append(Field(t("card.region"), t("card.region_excluded", region=case.region)))
    if case.first_response_at is not None:
        fields.append(Field(t("card.first_response"),
                            f"{time_token(case.first_response_at)} "
                            f"{mention(case.first_response_by or '')}"))
    if incidents:
        fields.append(Field(t("card.incident"), t.join(incidents)))
    buttons: list[Button] = []
    if case.status.is_active:
        if case.status is CaseStatus.OPEN:
            buttons.append(Button(t("card.button_ack"), f"/support card ack {case.ref}",
                                  "primary"))
        buttons.append(Button(t("card.button_close"), f"/support card close {case.ref}"))
    title = t("card.title", ref=case.ref, sev=case.severity.value,
              alias=t(f"severity.{case.severity.value}"), summary=case.summary)
    text = "\n".join([title, *(t("card.field_line", label=f.label, value=f.value)
                               for f in fields)])
    return Message(text, title=f"{case.ref} · {case.severity.value}",
                   sections=(Section(title, tuple(fields)),), buttons=tuple(buttons),
                   footer=t("card.thread_hint"))
