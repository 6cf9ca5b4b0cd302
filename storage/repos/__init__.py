"""Repositories, one module per aggregate: queries on one session (the caller's transaction)
that take and return domain objects. SQL lives here and nowhere above storage."""

from storage.repos.accounts import Accounts, Bindings, Tags
from storage.repos.advisories import Advisories
from storage.repos.audit import Audit
from storage.repos.cases import Cases
from storage.repos.digests import Digests
from storage.repos.home import Viewers
from storage.repos.inbox import Inbox
from storage.repos.incidents import IncidentPosts, Incidents
from storage.repos.perks import PerkLedger
from storage.repos.plans import PlanChanges, Usage
from storage.repos.reports import ReportRecipients, Reports, ReportSettings
from storage.repos.secrets import GroupSecrets
from storage.repos.staff import ANY_TEAM, Staff

__all__ = ["ANY_TEAM", "Accounts", "Advisories", "Audit", "Bindings", "Cases", "Digests",
           "GroupSecrets", "Inbox", "IncidentPosts", "Incidents", "PerkLedger", "PlanChanges",
           "ReportRecipients", "ReportSettings", "Reports", "Staff", "Tags", "Usage", "Viewers"]
