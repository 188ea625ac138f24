"""The on-disk token cache: resolved tokens shared by every process of the user.

Every cron run is a new process. Without a cache on disk each one resolves its key again:
an extra connection to the API before the first ping, and one request against the API's
rate limit. Here a resolved token is kept in one small file per (``api_url``, API key,
monitor key), named by a digest of the three so that no secret and no key shows in a
file name. The folder is made ``0700`` and each file ``0600``; a file is written whole to
a temporary name and renamed into place, so many processes may write at once and a reader
never sees half an entry. A file is only believed when it is a regular file owned by
this user that nobody else may write. Every failure (no home folder, a read-only or full
disk, a malformed entry) means "no entry": the caller keeps to its memory cache, the
trouble is logged once at DEBUG, and nothing here raises.

Processes that find no entry at the same moment (a fleet started by one crontab minute)
take turns through a lock file per entry, so one of them asks the API and the others read
its answer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Literal, NamedTuple

from ._config import TOKEN_CACHE_OFF, is_sendable
from ._forksafe import reset_after_fork
from ._protocol import PINGABLE_KINDS

log = logging.getLogger("steadycron")

#: Larger files are not entries this code wrote.
MAX_ENTRY_BYTES = 64 * 1024
#: How often a process waiting for another's resolve looks again.
LOCK_POLL_SECONDS = 0.005
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK if hasattr(os, "O_NOFOLLOW") else 0
_NOT_OURS_TO_WRITE = stat.S_IWGRP | stat.S_IWOTH

Turn = Literal["held", "busy", "no locks"]
HELD: Turn = "held"
BUSY: Turn = "busy"
NO_LOCKS: Turn = "no locks"


# Named tuples rather than attrs classes: this module loads in every cold process, where
# each class made at import is a cost paid per run.


class Entry(NamedTuple):
    """One resolution: the token, its monitor's kind, and when (epoch seconds) it was made."""

    token: str
    kind: str
    resolved_at: float


class Names(NamedTuple):
    """Where one entry lives: its tenant's prefix (api_url and API key) and its file stem."""

    tenant: str
    stem: str


def _digest(*parts: str) -> str:
    joined = "\0".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.sha256(joined).hexdigest()[:32]


def tenant_prefix(api_url: str, api_key: str) -> str:
    """The file-name prefix of every entry made with *api_url* and *api_key*."""
    return _digest(
        "steadycron-token-cache-1", api_url, hashlib.sha256(api_key.encode()).hexdigest()
    )


def names(api_url: str, api_key: str, key: str) -> Names:
    tenant = tenant_prefix(api_url, api_key)
    return Names(tenant, f"{tenant}-{_digest(tenant, key)}")


def _entry_from(data: bytes) -> Entry | None:
    """The entry in *data*, or None when it is not one this code would write."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    token, kind, resolved_at = (document.get(f) for f in ("token", "kind", "resolved_at"))
    if not isinstance(token, str) or not token or not is_sendable(token):
        return None
    if kind not in PINGABLE_KINDS:
        return None
    if isinstance(resolved_at, bool) or not isinstance(resolved_at, (int, float)):
        return None
    if not math.isfinite(resolved_at):
        return None
    return Entry(token, kind, float(resolved_at))


class TokenCache:
    """One cache folder. Use :func:`token_cache_at` so a process has one per folder.

    Args:
        folder: the folder (created ``0700`` with its parents when missing).
    """

    def __init__(self, folder: str) -> None:
        self.folder = os.path.expanduser(folder)
        self._told = False
        self._held: set[int] = set()
        reset_after_fork(self)

    def __repr__(self) -> str:
        return f"TokenCache({self.folder!r})"

    # -- entries ----------------------------------------------------------------------

    def load(self, where: Names) -> Entry | None:
        """The entry stored at *where*, if there is one that can be trusted."""
        path = os.path.join(self.folder, f"{where.stem}.json")
        try:
            fd = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._tell("could not read", exc)
            return None
        try:
            info = os.fstat(fd)
            if not _trusted(info):
                self._tell("ignored an entry not owned by this user, or writable by others")
                return None
            data = os.read(fd, MAX_ENTRY_BYTES + 1)
        except OSError as exc:
            self._tell("could not read", exc)
            return None
        finally:
            os.close(fd)
        entry = _entry_from(data) if len(data) <= MAX_ENTRY_BYTES else None
        if entry is None:
            self._tell("ignored a malformed entry")
        return entry

    def store(self, where: Names, entry: Entry) -> None:
        """Write *entry* at *where*: whole, ``0600``, replacing what was there."""
        data = json.dumps(entry._asdict()).encode()
        temporary = os.path.join(self.folder, f"{where.stem}.{os.urandom(6).hex()}.tmp")
        try:
            self._make_folder()
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS, 0o600)
            try:
                os.fchmod(fd, 0o600)  # whatever the umask
                _write_all(fd, data)
            finally:
                os.close(fd)
            os.replace(temporary, os.path.join(self.folder, f"{where.stem}.json"))
        except OSError as exc:
            self._tell("could not write", exc)
            _unlink_quietly(temporary)

    def remove_tenant(self, tenant: str) -> None:
        """Remove every file of the entries made with one api_url and API key."""
        try:
            listed = os.listdir(self.folder)
        except FileNotFoundError:
            return
        except OSError as exc:
            self._tell("could not list", exc)
            return
        for name in listed:
            if name.startswith(f"{tenant}-"):
                _unlink_quietly(os.path.join(self.folder, name))

    # -- taking turns with other processes --------------------------------------------

    @contextmanager
    def turn(self, where: Names, *, wait_until: float) -> Iterator[Turn]:
        """Hold the entry's lock while the block runs, waiting for another process to
        release it until *wait_until* (monotonic). Yields how that went: ``HELD``,
        ``BUSY`` (another process kept it: the block runs without it) or ``NO_LOCKS``
        (locks do not work here: the block runs without one)."""
        fd, turn = self._lock(where, wait_until)
        try:
            yield turn
        finally:
            if fd is not None:
                self._held.discard(fd)
                os.close(fd)  # closing releases the lock

    def _lock(self, where: Names, wait_until: float) -> tuple[int | None, Turn]:
        try:
            import fcntl

            self._make_folder()
            path = os.path.join(self.folder, f"{where.stem}.lock")
            fd = os.open(path, os.O_RDWR | os.O_CREAT | _OPEN_FLAGS, 0o600)
        except (ImportError, OSError) as exc:
            self._tell("could not lock", exc)
            return None, NO_LOCKS
        self._held.add(fd)
        turn = BUSY
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd, HELD
                except BlockingIOError:
                    pass
                except OSError as exc:
                    self._tell("could not lock", exc)
                    turn = NO_LOCKS
                    break
                if time.monotonic() + LOCK_POLL_SECONDS >= wait_until:
                    break
                time.sleep(LOCK_POLL_SECONDS)
        except BaseException:
            self._held.discard(fd)
            os.close(fd)
            raise
        self._held.discard(fd)
        os.close(fd)
        return None, turn

    # -- internals --------------------------------------------------------------------

    def _make_folder(self) -> None:
        if os.path.isdir(self.folder):
            return
        if self.folder.startswith("~"):
            raise FileNotFoundError(f"no home folder to put {self.folder} in")
        parent = os.path.dirname(self.folder)
        if parent:
            os.makedirs(parent, exist_ok=True)
        try:
            os.mkdir(self.folder, 0o700)
        except FileExistsError:
            return
        os.chmod(self.folder, 0o700)  # whatever the umask

    def _tell(self, what: str, exc: Exception | None = None) -> None:
        """Log the first trouble at DEBUG: the cache is an optimisation, not a duty."""
        if self._told:
            return
        self._told = True
        cause = ""
        if exc is not None:
            cause = f": {type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
        log.debug(
            "token cache %s %s%s; keeping tokens in memory where the disk fails",
            self.folder,
            what,
            cause,
        )

    def _after_fork_in_child(self) -> None:
        # A lock taken by a thread of the parent must stay the parent's: closing our copy
        # of the descriptor (never unlocking it) leaves the parent's lock in place.
        held, self._held = self._held, set()
        for fd in held:
            with suppress(OSError):
                os.close(fd)


def _trusted(info: os.stat_result) -> bool:
    return (
        stat.S_ISREG(info.st_mode)
        and info.st_uid == os.geteuid()
        and not info.st_mode & _NOT_OURS_TO_WRITE
    )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _unlink_quietly(path: str) -> None:
    with suppress(OSError):
        os.unlink(path)


#: One cache per folder and process; no lock guards it (setdefault is atomic), so a fork
#: can never inherit one held.
_caches: dict[str, TokenCache] = {}


def token_cache_for(folder: str, transport: object) -> TokenCache | None:
    """The process's cache for *folder*, or None: when it is ``off``, for the transports
    that never reach SteadyCron (the test kit's, ``InMemoryTransport``, ``NullTransport``),
    and where files cannot be owned (no ``os.geteuid``: the checks that make the cache
    safe would not hold)."""
    if folder == TOKEN_CACHE_OFF or not hasattr(os, "geteuid"):
        return None
    from .transports._memory import InMemoryTransport, NullTransport

    if isinstance(transport, (InMemoryTransport, NullTransport)):
        return None
    cache = _caches.get(folder)
    if cache is None:
        cache = _caches.setdefault(folder, TokenCache(folder))
    return cache
