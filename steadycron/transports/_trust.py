"""Reading a trust store (CA bundle) so that no fork ever catches it half done.

Loading a system bundle takes tens of milliseconds, inside OpenSSL and under our lock. A
process forked meanwhile from another thread would inherit that lock held, by a thread it
does not have, and hang on its first TLS connection (and possibly on OpenSSL's own locks).
So a fork waits for a load under way to finish: the lock is taken before every fork and
given back on both sides after it, as the standard library's logging does for its lock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_hooked = False


def _before_fork() -> None:
    _lock.acquire()


def _after_fork() -> None:
    _lock.release()


def load_trust(load: Callable[[], T]) -> T:
    """Run *load* (something that reads a trust store) where no fork can interrupt it."""
    global _hooked
    with _lock:
        if not _hooked and hasattr(os, "register_at_fork"):
            os.register_at_fork(
                before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork
            )
            _hooked = True
        return load()
