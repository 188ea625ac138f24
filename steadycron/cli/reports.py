"""Run reports from the shell: ``ping --report JSON|@FILE`` and the report file that
``steadycron run`` hands its command in ``STEADYCRON_REPORT_FILE``.

Both take a JSON object whose fields have the SDK's names (``tokens_in``, ``cost_usd``)
or the wire names (``tokensIn``, ``costUsd``), so a tool that already writes SteadyCron's
report format needs no translation. A report given as an option is checked strictly (a
person is at the keyboard); a report file written by a job is taken as far as it is valid,
since a monitoring detail must never cost the job its outcome ping.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .common import warn

REPORT_FILE_VARIABLE = "STEADYCRON_REPORT_FILE"
#: A report is a few hundred bytes; a file much larger than this is not one.
MAX_REPORT_FILE_BYTES = 1024 * 1024


def report_option(text: str) -> dict[str, Any]:
    """The report of ``--report``: inline JSON, or ``@FILE`` to read it from a file.

    Raises:
        ValueError, TypeError: the JSON is invalid or a field is wrong (the message says
            which and, for a file, names it).
    """
    from steadycron._protocol import read_report
    from steadycron._report import check_report

    source = "--report"
    if text.startswith("@"):
        source = text[1:]
        try:
            with open(source, "rb") as file:
                data = file.read(MAX_REPORT_FILE_BYTES + 1)
        except OSError as exc:
            raise ValueError(f"cannot read the report file {source}: {exc.strerror}") from None
        if len(data) > MAX_REPORT_FILE_BYTES:
            raise ValueError(f"the report file {source} is larger than 1 MiB")
    else:
        data = text.encode("utf-8", "surrogateescape")
    try:
        return check_report(read_report(data))
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{source}: {exc}") from None


@contextmanager
def report_file() -> Iterator[str]:
    """A path, in a private folder of its own, where a command may write its report.

    The file does not exist until the command writes it; the folder is removed on exit.
    """
    folder = tempfile.mkdtemp(prefix="steadycron-run-")
    try:
        yield os.path.join(folder, "report.json")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def read_report_file(path: str) -> dict[str, Any] | None:
    """The valid fields of the report a command wrote to *path*; None when it wrote none.

    Whatever is wrong (unreadable, not JSON, a field of the wrong type) is a warning on
    stderr naming the file; the fields that are valid are still reported.
    """
    from steadycron._protocol import read_report
    from steadycron._report import check_report

    try:
        with open(path, "rb") as file:
            data = file.read(MAX_REPORT_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        warn(f"report file {path} could not be read ({exc.strerror}); run reported without it")
        return None
    if len(data) > MAX_REPORT_FILE_BYTES:
        warn(f"report file {path} is larger than 1 MiB; run reported without it")
        return None
    if not data.strip():
        return None
    try:
        fields = read_report(data)
    except ValueError as exc:
        warn(f"report file {path} is not valid: {exc}; run reported without it")
        return None
    report: dict[str, Any] = {}
    for name, value in fields.items():
        try:
            report.update(check_report({name: value}))
        except (TypeError, ValueError) as exc:
            warn(f"report file {path}: {exc}; that field is left out")
    return report
