"""Resetting threads, locks and pooled sockets in a forked child.

A child inherits its parent's pooled connections (two processes writing one socket) and
locks that a vanished thread may hold. Objects that own such things register here and are
told to start afresh in the child.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Protocol


class ForkAware(Protocol):
    def _after_fork_in_child(self) -> None: ...


_registered: weakref.WeakSet[ForkAware] = weakref.WeakSet()
_hook_lock = threading.Lock()
_hook_installed = False


def _reset_all_in_child() -> None:
    global _hook_lock
    _hook_lock = threading.Lock()
    for obj in list(_registered):
        obj._after_fork_in_child()


def reset_after_fork(obj: ForkAware) -> None:
    """Call ``obj._after_fork_in_child()`` in every child forked from now on."""
    global _hook_installed
    with _hook_lock:
        if not _hook_installed and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_reset_all_in_child)
            _hook_installed = True
        _registered.add(obj)
