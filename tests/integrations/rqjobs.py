"""Job functions the RQ tests enqueue; a worker process imports them by name."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import rq

from steadycron.integrations.rq import job


@job("nightly-db-backup")
def backup() -> str:
    return "backed up"


@job("always-fails")
def always_fails() -> None:
    raise OSError("disk full")


@job("flaky")
def flaky(counter: str, failures: int) -> str:
    """Fail the first *failures* attempts, counting them in the file *counter*."""
    path = Path(counter)
    attempt = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(attempt))
    if attempt <= failures:
        raise ConnectionError(f"attempt {attempt} failed")
    return "done"


@job("warm-cache")
async def warm() -> str:
    await asyncio.sleep(0.01)
    return "warm"


@job("asks-for-retries")
def asks_for_retries() -> rq.Retry:
    return rq.Retry(max=1)


def plain() -> str:
    return "plain"


def plain_fails() -> None:
    raise ValueError("bad row")


def dies() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
