"""/TrackingCategories, its Options, /Reports/ProfitAndLoss and /Reports/TrialBalance: paths outside the generic
resource table because their bodies, answers and sub-paths have shapes of their own."""

from __future__ import annotations

from typing import Any

from xero_emulator.domain import reports, tracking, trial_balance
from xero_emulator.domain.errors import BadRequest
from xero_emulator.domain.organisation import Organisation
from xero_emulator.messages import Request, Response, envelope, render
from xero_emulator.xero_api.batches import request_elements
from xero_emulator.xero_api.lists import filter_where
from xero_emulator.xero_api.params import flag

CATEGORIES = "trackingcategories"


def allowed_methods(parts: list[str]) -> tuple[str, ...] | None:
    """The methods of a tracking or report path; None when the path is not one of them."""
    head = [p.lower() for p in parts]
    if head in (["reports", "profitandloss"], ["reports", "trialbalance"]):
        return ("GET",)
    if not head or head[0] != CATEGORIES:
        return None
    if len(head) == 1:
        return ("GET", "PUT")
    if len(head) == 2:
        return ("GET", "POST", "DELETE")
    if head[2] != "options":
        return None
    if len(head) == 3:
        return ("PUT",)
    if len(head) == 4:
        return ("POST", "DELETE")
    return None


def handles(parts: list[str]) -> bool:
    return bool(parts) and parts[0].lower() in (CATEGORIES, "reports")


def handle(org: Organisation, request: Request, parts: list[str], provider: str) -> Response:
    if parts[0].lower() == "reports" and parts[1].lower() == "trialbalance":
        report = trial_balance.trial_balance(org, request.param("date"), flag(request, "paymentsOnly", False))
        return Response.json(200, envelope("Reports", [report], provider))
    if parts[0].lower() == "reports":
        return Response.json(
            200, envelope("Reports", [reports.profit_and_loss(org, _report_params(request))], provider)
        )
    method = request.method
    if len(parts) == 1 and method == "GET":
        items = tracking.listing(org, flag(request, "includeArchived", False))
        return _categories(_ordered(request, filter_where(request, items)), provider)
    if len(parts) == 1:
        return _categories([tracking.create_category(org, _single(request, "TrackingCategories"))], provider)
    category = tracking.find_category(org, parts[1])
    if len(parts) == 2 and method == "GET":
        return _categories([tracking.view(category)], provider)
    if len(parts) == 2 and method == "POST":
        updated = tracking.update_category(org, category, _single(request, "TrackingCategories"))
        return _categories([tracking.view(updated)], provider)
    if len(parts) == 2:
        return _categories([tracking.delete_category(org, category)], provider)
    if len(parts) == 3:
        return _options(tracking.create_options(org, category, request_elements(request, "Options")), provider)
    option = tracking.find_option(category, parts[3])
    if method == "POST":
        return _options([tracking.update_option(org, category, option, _single(request, "Options"))], provider)
    return _options([tracking.delete_option(org, category, option)], provider)


def _single(request: Request, resource: str) -> dict[str, Any]:
    elements = request_elements(request, resource)
    if len(elements) != 1:
        raise BadRequest(f"This operation takes exactly one element; {len(elements)} were sent.")
    return elements[0]


def _categories(items: list[dict[str, Any]], provider: str) -> Response:
    return Response.json(200, envelope("TrackingCategories", render(items), provider))


def _options(items: list[dict[str, Any]], provider: str) -> Response:
    return Response.json(200, envelope("Options", render(items), provider))


def _ordered(request: Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`order` as "Field" or "Field ASC|DESC" on a top-level field (Name, Status)."""
    order = request.param("order")
    if not order:
        return items
    words = order.split()
    if len(words) not in (1, 2) or (len(words) == 2 and words[1].upper() not in ("ASC", "DESC")):
        raise BadRequest('order must be a field name, optionally followed by ASC or DESC, such as "Name ASC".')
    field = words[0]
    descending = len(words) == 2 and words[1].upper() == "DESC"
    return sorted(items, key=lambda i: str(i.get(field, "")).lower(), reverse=descending)


def _report_params(request: Request) -> reports.ReportParams:
    if flag(request, "paymentsOnly", False):
        raise BadRequest("The emulator reports on the accrual basis only; paymentsOnly=true is not supported.")
    for unsupported in ("periods", "timeframe"):
        if request.param(unsupported):
            raise BadRequest(f"The emulator does not support {unsupported} on the ProfitAndLoss report.")
    return reports.ReportParams(
        from_date=request.param("fromDate"),
        to_date=request.param("toDate"),
        category_1=request.param("trackingCategoryID"),
        option_1=request.param("trackingOptionID"),
        category_2=request.param("trackingCategoryID2"),
        option_2=request.param("trackingOptionID2"),
    )
