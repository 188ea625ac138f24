"""Pings sent at interpreter exit are delivered (API.md §5: a ping is done when it returns).

Python 3.12 refuses to start a thread once interpreter shutdown has begun, which is when
``atexit`` handlers run; a ping that needs a worker thread (a resolve, a new connection)
is then sent on the caller's own thread instead, still within ``ping_timeout``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import API_KEY, KEY, TOKEN
from loopback import LoopbackServer

RESOLVE = "/api/monitors/resolve"


def test_a_job_and_a_manual_ping_in_an_atexit_handler_are_delivered(
    server: LoopbackServer,
) -> None:
    script = textwrap.dedent(
        f"""
        import atexit
        import steadycron

        steadycron.configure(
            api_key={API_KEY!r}, api_url={server.url!r}, ping_url={server.url!r},
            ping_timeout=5,
        )

        @steadycron.job({KEY!r})
        def cleanup():
            pass

        def at_exit():
            cleanup()
            steadycron.Monitor({KEY!r}).ping("success", "exit hook")

        atexit.register(at_exit)
        """
    )
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert "discarded" not in ran.stderr, ran.stderr
    assert server.paths() == [RESOLVE, f"/{TOKEN}/start", f"/{TOKEN}", f"/{TOKEN}"]
    assert server.received[-1].body == b"exit hook"


def test_a_ping_at_exit_after_the_process_already_pinged_is_delivered(
    server: LoopbackServer,
) -> None:
    """Worker threads left idle by earlier pings, and an open connection, at exit."""
    script = textwrap.dedent(
        f"""
        import atexit
        import steadycron

        steadycron.configure(ping_url={server.url!r}, monitors={{{KEY!r}: {TOKEN!r}}})
        steadycron.Monitor({KEY!r}).ping("start")
        atexit.register(lambda: steadycron.Monitor({KEY!r}).ping("success"))
        """
    )
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert "discarded" not in ran.stderr, ran.stderr
    assert server.paths() == [f"/{TOKEN}/start", f"/{TOKEN}"]
