"""SteadyCron's wire format, written once (PROTOCOL.md).

Both directions live here: the SDK builds resolve requests and ping URLs and reads
resolve answers; the in-memory transports, the test kit, the dev server and the tests'
stand-ins read those requests back and build the answers. Nothing here does I/O.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping

import attrs

from ._version import __version__

USER_AGENT = f"steadycron-python/{__version__}"
RESOLVE_PATH = "/api/monitors/resolve"
STATES = ("start", "success", "fail")
#: Kinds of monitor the SDK pings; a key of any other kind is refused (PROTOCOL.md).
PINGABLE_KINDS = ("heartbeat", "agent")
#: The path after the token for each state; success takes the bare token (PROTOCOL.md).
PATH_SUFFIX = {"start": "/start", "success": "", "fail": "/fail"}

TEXT_HEADERS = {"User-Agent": USER_AGENT, "Content-Type": "text/plain; charset=utf-8"}
NO_BODY_HEADERS = {"User-Agent": USER_AGENT}
JSON_HEADERS = {"Content-Type": "application/json"}


# -- resolve -------------------------------------------------------------------------------


def resolve_url(api_url: str, key: str) -> str:
    """``GET`` target that asks *api_url* for the token of *key*."""
    return f"{api_url}{RESOLVE_PATH}?{urllib.parse.urlencode({'key': key})}"


def resolve_headers(api_key: str) -> dict[str, str]:
    """The headers of a resolve request: the bearer key, and JSON asked for."""
    return {
        "Authorization": f"Bearer {api_key}",
        "User-Agent": USER_AGENT,
        "Accept": "application/json",
    }


def resolve_key_of(url: str) -> str | None:
    """The key a resolve request for *url* asks for, or None when it is no resolve."""
    if RESOLVE_PATH not in url:
        return None
    parts = urllib.parse.urlsplit(url)
    if not parts.path.rstrip("/").endswith(RESOLVE_PATH):
        return None
    return urllib.parse.parse_qs(parts.query).get("key", [""])[0]


@attrs.frozen
class Resolution:
    """What a 200 resolve answer says: the ping token (if any) and the monitor's kind."""

    token: str | None
    kind: str


def read_resolution(body: bytes) -> Resolution:
    """The token and kind of a 200 answer.

    Raises:
        ValueError: the body is not SteadyCron's JSON object (the text says what is off).
    """
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # deeply nested JSON exhausts the decoder's stack
        document = None
    if not isinstance(document, dict):
        raise ValueError("the resolve answer was not SteadyCron's JSON")
    kind = document.get("kind", "heartbeat")
    if not isinstance(kind, str):
        raise ValueError("the resolve answer's kind was not a string")
    token = document.get("ping_token")
    return Resolution(token if isinstance(token, str) and token else None, kind)


def resolution_body(key: str, token: str, *, kind: str = "heartbeat", job_id: str = "") -> bytes:
    """A 200 resolve answer, as a stand-in sends it."""
    document = {"key": key, "job_id": job_id or f"job_{key}", "kind": kind, "ping_token": token}
    return json.dumps(document).encode()


def error_body(code: str, message: str) -> bytes:
    """An error answer's body, in the ``{"error", "message"}`` form."""
    return json.dumps({"error": code, "message": message}).encode()


def server_message(body: bytes) -> str | None:
    """The server's own explanation in an error body (either documented form), if any."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    message = document.get("message") if isinstance(document, dict) else None
    return message if isinstance(message, str) and message else None


# -- pings ---------------------------------------------------------------------------------


def token_segment(token: str) -> str:
    """*token* as exactly one path segment: nothing in it can change path or query."""
    segment = urllib.parse.quote(token, safe="")
    # "." and ".." survive quoting but are dot-segments that URL normalisation removes.
    return segment.replace(".", "%2E") if segment in (".", "..") else segment


def ping_query(environment: str | None, run_id: str | None) -> str:
    """The query of a ping: ``env`` when an environment is set, ``run_id`` for a run."""
    parts = []
    if environment is not None:
        parts.append(f"env={urllib.parse.quote(environment, safe='')}")
    if run_id:
        # A run's own id is 32 hex digits, which quoting leaves as they are: skip it.
        safe = run_id.isascii() and run_id.isalnum()
        parts.append(f"run_id={run_id if safe else urllib.parse.quote(run_id, safe='')}")
    return "&".join(parts)


@attrs.frozen
class PingTarget:
    """A ping read back from its URL: which token, which state, and the query's values."""

    token: str
    state: str
    environment: str | None
    run_id: str | None


def read_ping(
    path: str, query: str | Mapping[str, str], *, base_path: str = ""
) -> PingTarget | None:
    """The ping a request to *path* (below *base_path*) sends, or None if it is none."""
    if base_path and path.startswith(base_path.rstrip("/") + "/"):
        path = path[len(base_path.rstrip("/")) :]
    segments = [urllib.parse.unquote(segment) for segment in path.split("/") if segment]
    if len(segments) == 1:
        state = "success"
    elif len(segments) == 2 and segments[1] in STATES:
        state = segments[1]
    else:
        return None
    values = dict(urllib.parse.parse_qsl(query)) if isinstance(query, str) else dict(query)
    return PingTarget(segments[0], state, values.get("env") or None, values.get("run_id") or None)


# -- the run report of agent monitors ------------------------------------------------------

#: Report fields: Python name -> wire name (PROTOCOL.md "Agent monitors"), in body order.
REPORT_WIRE_NAMES = {
    "items": "itemsProduced",
    "output_chars": "outputChars",
    "steps": "steps",
    "tool_calls": "toolCalls",
    "model": "model",
    "tokens_in": "tokensIn",
    "tokens_out": "tokensOut",
    "cost_usd": "costUsd",
    "trace_url": "traceUrl",
    "summary": "summary",
}
REPORT_FIELDS_BY_WIRE_NAME = {wire: name for name, wire in REPORT_WIRE_NAMES.items()}
REPORT_CONTENT_TYPE = "application/json"
REPORT_HEADERS = {"User-Agent": USER_AGENT, "Content-Type": REPORT_CONTENT_TYPE}


def report_body(values: Mapping[str, object]) -> bytes:
    """The JSON body of an agent outcome ping, from Python-named, checked values.

    A ``Decimal`` cost leaves as a JSON number (through float: a cost needs no more than
    the 17 significant digits a float keeps).
    """
    document = {wire: values[name] for name, wire in REPORT_WIRE_NAMES.items() if name in values}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, default=float).encode()


def read_report(body: bytes) -> dict[str, object]:
    """The fields of a report body under their Python names (unknown ones keep theirs).

    Wire names and Python names are both read, so a report file written by hand in
    either spelling works.

    Raises:
        ValueError: the body is not a JSON object, or gives one field twice.
    """
    try:
        document = json.loads(body) if body.strip() else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"the report is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except (ValueError, RecursionError):  # not UTF-8, or nested past the decoder's stack
        raise ValueError("the report is not valid JSON") from None
    if not isinstance(document, dict):
        raise ValueError(f"the report must be a JSON object, not {type(document).__name__}")
    fields: dict[str, object] = {}
    for name, value in document.items():
        field = REPORT_FIELDS_BY_WIRE_NAME.get(str(name), str(name))
        if field in fields:
            raise ValueError(f"the report gives {field!r} twice (as {name!r} too)")
        fields[field] = value
    return fields
