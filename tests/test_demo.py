"""The README's first command: the demo runs, shows every ping, and leaves nothing behind."""

from __future__ import annotations

import re
import subprocess
import sys


def test_the_demo_shows_each_ping_arrive_and_exits_cleanly() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "steadycron", "demo", "--ping-timeout", "0.5"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(r"nightly-db-backup\s+start\s+env=demo\s+run=[0-9a-f]{8}", out)
    assert re.search(r"nightly-db-backup\s+success\s+env=demo\s+run=[0-9a-f]{8}\s+took", out)
    assert re.search(r'hourly-report\s+fail\s+.*"OSError: disk full on /var/reports"', out)
    assert re.search(r"warm-search-index\s+success", out)
    assert out.count("ping discarded: key='nightly-db-backup'") == 2
    assert "Done: 8 pings received" in out
    assert "Traceback" not in out + result.stderr
