"""Synapse's event reports admin API: list, get, delete. Admins only.

Shapes follow element-hq/synapse `docs/admin_api/event_reports.md` (paged newest first
with `from`/`limit`, `total` and `next_token`); what an entry holds is the operator's
`reports_txn`, as the operator page shows it. Only reported events are listed here,
as Synapse does; room and user reports are on the operator page.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.client.auth import services_of
from relay.client.params import int_query
from relay.client.route import ClientRoute
from relay.client.synapse_admin import ADMIN_V1, admin_requester
from relay.errors import InvalidParam, NotFound
from relay.operator import actions as operator
from relay.runtime.http import json_response
from store import Connection
from store import reports as store_reports

MAX_PAGE = 100


def _entry(view: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": view["id"],
        "received_ts": view["received_ts"],
        "room_id": view["room_id"],
        "name": view.get("room_name"),
        "event_id": view["event_id"],
        "user_id": view["reporter"],
        "reason": view["reason"],
        "score": view["score"],
        "sender": view.get("sender"),
        "canonical_alias": view.get("canonical_alias"),
    }


def _report_id(request: Request) -> int:
    raw = request.path_params["report_id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise InvalidParam(
            "The report_id parameter must be a string representing a positive integer."
        )
    return int(raw)


async def list_event_reports(request: Request) -> Response:
    """# `GET /_synapse/admin/v1/event_reports`"""
    await admin_requester(request)
    services = services_of(request)
    start = int_query(request, "from", 0)
    limit = min(int_query(request, "limit", MAX_PAGE), MAX_PAGE)

    def txn(conn: Connection) -> tuple[list[dict[str, Any]], int]:
        page = operator.reports_txn(conn, services.rooms, kind="event", offset=start, limit=limit)
        return page, store_reports.count_reports(conn, kind="event")

    page, total = await services.database.read(txn)
    answer: dict[str, Any] = {"event_reports": [_entry(v) for v in page], "total": total}
    if start + len(page) < total:
        answer["next_token"] = start + len(page)
    return json_response(answer)


async def get_event_report(request: Request) -> Response:
    """# `GET /_synapse/admin/v1/event_reports/{report_id}`"""
    await admin_requester(request)
    services = services_of(request)
    report_id = _report_id(request)

    def txn(conn: Connection) -> dict[str, Any] | None:
        row = store_reports.get_report(conn, report_id)
        if row is None or row["kind"] != "event":
            return None
        pdu = services.rooms.get_pdu_txn(conn, row["event_id"])
        view = operator.report_view_txn(conn, services.rooms, row)
        return {**_entry(view), "event_json": pdu.as_dict() if pdu is not None else None}

    found = await services.database.read(txn)
    if found is None:
        raise NotFound("Event report not found")
    return json_response(found)


async def delete_event_report(request: Request) -> Response:
    """# `DELETE /_synapse/admin/v1/event_reports/{report_id}`"""
    await admin_requester(request)
    services = services_of(request)
    await services.database.write(operator.dismiss_report_txn, _report_id(request))
    return json_response({})


ROUTES = [
    ClientRoute("/event_reports", list_event_reports, ("GET",), auth=False, prefixes=ADMIN_V1),
    ClientRoute(
        "/event_reports/{report_id}", get_event_report, ("GET",), auth=False, prefixes=ADMIN_V1
    ),
    ClientRoute(
        "/event_reports/{report_id}",
        delete_event_report,
        ("DELETE",),
        auth=False,
        prefixes=ADMIN_V1,
    ),
]
