"""The same job monitored with the standard library alone: a fresh connection and TLS
context per request, as ``urllib.request.urlopen`` makes easy."""

import json
import os
import ssl
import urllib.parse
import urllib.request

API_URL = os.environ["STEADYCRON_API_URL"]
PING_URL = os.environ["STEADYCRON_PING_URL"]
HEADERS = {"User-Agent": "stdlib-job"}


def call(url: str, method: str = "POST", headers: dict[str, str] | None = None) -> bytes:
    request = urllib.request.Request(
        url, data=b"" if method == "POST" else None, method=method, headers=headers or HEADERS
    )
    context = ssl.create_default_context()
    with urllib.request.urlopen(request, timeout=5, context=context) as answer:
        body: bytes = answer.read()
        return body


def job() -> None:
    """The job's own work is nothing, so what is measured is the monitoring."""


query = urllib.parse.urlencode({"key": "cold-job"})
authorization = {**HEADERS, "Authorization": f"Bearer {os.environ['STEADYCRON_API_KEY']}"}
answer = call(f"{API_URL}/api/monitors/resolve?{query}", "GET", authorization)
token = urllib.parse.quote(json.loads(answer)["ping_token"], safe="")
run_id = os.urandom(16).hex()
call(f"{PING_URL}/{token}/start?run_id={run_id}")
job()
call(f"{PING_URL}/{token}?run_id={run_id}")
