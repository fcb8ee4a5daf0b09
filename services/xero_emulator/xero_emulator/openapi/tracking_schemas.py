"""The schemas of tracking categories and options, a line's tracking, and the ProfitAndLoss report
(Xero's TrackingCategory, TrackingOption, LineItemTracking and ReportWithRows)."""

from __future__ import annotations

from xero_emulator.openapi.schema_parts import MSDATE, STR, UUID, Schema, arr, enum, obj, ref

NAME: Schema = {"type": "string", "maxLength": 100}
TRACKING_STATUS = enum("ACTIVE", "ARCHIVED")
# What the emulator reads: a name and a status (ACTIVE or ARCHIVED; DELETED is DELETE's).
TRACKING_CATEGORY_IN = obj({"Name": NAME, "Status": TRACKING_STATUS})
TRACKING_OPTION_IN = obj({"Name": NAME, "Status": TRACKING_STATUS})
TRACKING_OPTION = obj({"TrackingOptionID": UUID, "Name": STR, "Status": enum("ACTIVE", "ARCHIVED", "DELETED")})
TRACKING_CATEGORY = obj(
    {
        "TrackingCategoryID": UUID,
        "Name": STR,
        "Status": enum("ACTIVE", "ARCHIVED", "DELETED"),
        "Options": arr(ref("TrackingOption")),
    }
)
# A line's tracking: by IDs, or by category Name and Option name; answered with all four.
LINE_ITEM_TRACKING_IN = obj({"TrackingCategoryID": UUID, "TrackingOptionID": UUID, "Name": NAME, "Option": STR})
LINE_ITEM_TRACKING = obj({"TrackingCategoryID": UUID, "TrackingOptionID": UUID, "Name": STR, "Option": STR})

REPORT_CELL = obj({"Value": STR, "Attributes": arr(obj({"Id": STR, "Value": STR}))})
ROW_TYPE = enum("Header", "Section", "Row", "SummaryRow")
REPORT_ROW = obj({"RowType": ROW_TYPE, "Title": STR, "Cells": arr(REPORT_CELL)})
REPORT_ROWS = obj({**REPORT_ROW["properties"], "Rows": arr(REPORT_ROW)})
REPORT = obj(
    {
        "ReportID": STR,
        "ReportName": STR,
        "ReportType": STR,
        "ReportTitles": arr(STR),
        "ReportDate": STR,
        "UpdatedDateUTC": MSDATE,
        "Fields": arr(obj({"FieldID": STR, "Description": STR, "Value": STR})),
        "Rows": arr(REPORT_ROWS),
    }
)
