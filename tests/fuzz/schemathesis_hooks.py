"""Schemathesis hooks for .ci/run.

Raw e-mail bodies (message/rfc822) are sent as bytes, the way binary bodies are, so that
POST /api/v1/intake/email is fuzzed like every other route.

The OpenAPI document states every rule the server checks of a single value (lengths, patterns,
ranges, formats). What no schema can say is steered here, for generated *positive* data only
(negative data is left as drawn):

- References to managed data: a contract, division or staff member named in a body must exist
  (.ci/run creates `fuzz` of each before fuzzing), so generated names are replaced by it; the
  `fuzz` staff member is never disabled (a disabled member cannot be assigned).
- Rules across fields: a period's `to` is not before its `from` and spans a bounded number of
  days; working hours open before they close; a person's export names an e-mail address or a
  phone number.
- Rules on state: an Idempotency-Key is unique per request (a key reused for another body is
  refused); a complaint outcome depends on whether the ticket is a complaint.
- Contents: an attachment's bytes must be an allowed type, judged by the bytes. (A raw e-mail
  must be a readable message: schemathesis.toml allows its 422 instead.)
"""

import base64
import datetime
import uuid

import schemathesis

schemathesis.serializer.alias("message/rfc822", "application/octet-stream")

# Created by .ci/run before fuzzing.
KNOWN = "fuzz"


def _positive(case):
    meta = case.meta
    return meta is not None and meta.generation.mode.is_positive


def _dates(query, parse, render, max_days):
    """Orders `from`/`to` and keeps the span within `max_days` (years 1900-9999)."""
    low, high = datetime.date(1900, 1, 1), datetime.date(9999, 12, 31)
    values = {}
    for name in ("from", "to"):
        if name in query:
            try:
                values[name] = min(max(parse(query[name]), low), high)
            except (TypeError, ValueError):
                return
    if "from" in values and "to" in values:
        start, end = sorted([values["from"], values["to"]])
        if (end - start).days >= max_days:
            start = end - datetime.timedelta(days=max_days - 1)
        values = {"from": start, "to": end}
    for name, value in values.items():
        query[name] = render(value)


def _parse_instant(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).date()


def _render_instant(day):
    return f"{day.isoformat()}T00:00:00Z"


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    path = case.operation.path
    # Responses list the `fuzz` contract, so schemathesis may name it in a path: it stays live.
    if path.endswith("/retire") and (case.path_parameters or {}).get("contract_id") == KNOWN:
        case.path_parameters["contract_id"] = f"{KNOWN}-retired"
    # The `fuzz` staff member is what assignments name: it stays enabled (a disabled member
    # gets no new tickets, a rule across requests that no schema can say).
    if path == "/api/v1/staff/{name}" and (case.path_parameters or {}).get("name") == KNOWN:
        if isinstance(case.body, dict) and case.body.get("disabled") is True:
            case.body["disabled"] = False
    if not _positive(case):
        return
    headers = case.headers or {}
    if "Idempotency-Key" in headers:
        headers["Idempotency-Key"] = f"{headers['Idempotency-Key'][:160]}-{uuid.uuid4()}"
    # A person's export names the person: an e-mail address or a phone number, one at least
    # (no schema of query parameters can say "one of these two").
    if path == "/api/v1/subjects/export":
        query = case.query if isinstance(case.query, dict) else {}
        if not any(str(query.get(name) or "").strip() for name in ("email", "phone")):
            query["email"] = "fuzz@example.com"
        case.query = query
    # The same for an erasure request's body (and it never erases a real person: a fuzz address).
    if path == "/api/v1/subjects/erase" and isinstance(case.body, dict):
        if not any(str(case.body.get(name) or "").strip() for name in ("email", "phone")):
            case.body["email"] = "fuzz@example.com"
    query = case.query
    if isinstance(query, dict):
        if path.startswith("/api/v1/stats/"):
            _dates(query, datetime.date.fromisoformat, datetime.date.isoformat, 3_700)
            # An open end defaults to today: keep the start within reach of it.
            if "from" in query and "to" not in query:
                query["from"] = datetime.date.today().replace(day=1).isoformat()
            if "to" in query and "from" not in query:
                query["to"] = datetime.date.today().isoformat()
        if path == "/api/v1/audit/export":
            _dates(query, _parse_instant, _render_instant, 3 * 366)
            if query.get("from") == query.get("to") and "to" in query:
                query["to"] = _render_instant(_parse_instant(query["to"]) + datetime.timedelta(days=1))
    body = case.body
    if not isinstance(body, dict):
        return
    if body.get("contract_id") is not None:
        body["contract_id"] = KNOWN
    if "division" in body:
        body["division"] = KNOWN
    if "assignee" in body:
        body["assignee"] = KNOWN
    if path.endswith("/resolve"):
        body.pop("complaint_outcome", None)
        body.pop("rejection_reasons", None)
    if isinstance(body.get("attachment"), dict):
        body["attachment"]["content_base64"] = base64.b64encode(b"fuzzing attachment\n").decode()
    hours = body.get("working_hours")
    if isinstance(hours, dict):
        for day, text in hours.items():
            if isinstance(text, str) and "-" in text:
                opens, closes = sorted(text.split("-"))
                hours[day] = f"{opens}-{closes}" if opens != closes else "08:00-16:00"
