"""A dev-server session as the README tells it: start it, paste its exports, run a job.

The real ``steadycron dev-server`` and ``steadycron run`` run as child processes, talking
over loopback; what the timeline prints is compared with the README's example.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli_server import REPOSITORY, STEADYCRON, environment, python

README = REPOSITORY / "README.md"


class DevServerProcess:
    """``steadycron dev-server ARGS`` in a child, its stdout read line by line."""

    def __init__(self, *argv: str, cwd: Path | None = None) -> None:
        self.process = subprocess.Popen(
            [*STEADYCRON, "dev-server", *argv],
            cwd=cwd,
            env=environment(None),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def lines_until(self, needle: str, timeout: float = 15) -> list[str]:
        """The lines printed up to and including the first one holding *needle*."""
        seen: list[str] = []
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line with {needle!r} in {seen}") from None
            if line is None:
                raise AssertionError(f"exited before a line with {needle!r}: {seen}")
            seen.append(line)
            if needle in line:
                return seen

    def exports(self) -> dict[str, str]:
        """The variables of the banner's ``export`` lines, as a shell would set them."""
        banner = self.lines_until("Press Ctrl-C to stop.")
        exported = {}
        for line in banner:
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").partition("=")
                exported[name] = value.partition("#")[0].strip()
        return exported

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def dev_servers() -> Iterator[list[DevServerProcess]]:
    started: list[DevServerProcess] = []
    yield started
    for child in started:
        if child.process.poll() is None:
            child.stop()


def run_pasting(exports: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[bytes]:
    """Run ``steadycron ARGUMENTS`` in a shell that has only the pasted exports set."""
    env = environment(None)
    for name in [name for name in env if name.startswith("STEADYCRON_")]:
        del env[name]
    env.update(exports)
    return subprocess.run(
        [*STEADYCRON, *arguments], env=env, capture_output=True, timeout=30, check=False
    )


def readme_timeline() -> list[str]:
    """The timeline example of the README's dev-server section."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("Paste the export lines") :]
    block = section[section.index("```text\n") + len("```text\n") :]
    return block[: block.index("```")].rstrip("\n").split("\n")


def normalized(lines: list[str]) -> list[str]:
    """Lines with what differs from run to run (time, run id, duration) masked."""
    masks = [
        (r"^\d\d:\d\d:\d\d\.\d{3}", "HH:MM:SS.mmm"),
        (r"run=[0-9a-f]{8}", "run=RUN"),
        (r"took \S+", "took DURATION"),
    ]
    result = []
    for line in lines:
        for pattern, mask in masks:
            line = re.sub(pattern, mask, line)
        result.append(line)
    return result


def test_the_readme_timeline_is_what_pasting_the_exports_gives(
    dev_servers: list[DevServerProcess],
) -> None:
    example = readme_timeline()
    output = example[-1].strip()
    child = DevServerProcess("--monitor", "nightly-db-backup", "--port", "0")
    dev_servers.append(child)
    exports = child.exports()
    script = f"import sys; print({output!r}, file=sys.stderr); sys.exit(1)"

    result = run_pasting(exports, "run", "nightly-db-backup", "--capture", "--", *python(script))
    timeline = [line for line in child.lines_until(output) if line]  # after the banner's blank

    assert result.returncode == 1, result.stderr
    assert "STEADYCRON_ENVIRONMENT" not in exports
    assert normalized(timeline) == normalized(example)


def test_the_captured_output_of_a_failed_run_shows_whole_in_the_timeline(
    dev_servers: list[DevServerProcess],
) -> None:
    child = DevServerProcess("--monitor", "nightly-db-backup", "--port", "0")
    dev_servers.append(child)
    exports = child.exports()
    script = "for n in range(40): print(f'step {n:02} of the backup: copying table t{n}')\nexit(3)"

    result = run_pasting(exports, "run", "nightly-db-backup", "--capture", "--", *python(script))
    timeline = child.lines_until("step 39")

    assert result.returncode == 3
    fail = next(index for index, line in enumerate(timeline) if " fail " in line)
    shown = timeline[fail + 1 :]
    assert all(line.startswith(" " * 14) for line in shown)
    text = "\n".join(line[14:] for line in shown)
    heading, _, output = text.partition("\n")
    assert heading == "command exited with code 3; output ends with:"
    assert output.startswith("...")  # the head was cut to fit the 1024 bytes
    assert text.endswith("step 39 of the backup: copying table t39")
    assert len(text.encode()) <= 1024
    assert sum("step " in line for line in shown) >= 20


def test_manifests_are_taken_as_arguments_and_with_manifest_options(
    dev_servers: list[DevServerProcess], tmp_path: Path
) -> None:
    for name, key in (("a.yaml", "from-argument"), ("b.yaml", "from-option"), ("c.yml", "too")):
        (tmp_path / name).write_text(
            f"version: 2\njobs:\n  - {{id: {key}, name: {key}, kind: heartbeat, interval: 60}}\n"
        )
    child = DevServerProcess(
        "a.yaml", "--manifest", "b.yaml", "--manifest", "c.yml", "--port", "0", cwd=tmp_path
    )
    dev_servers.append(child)

    banner = child.lines_until("Press Ctrl-C to stop.")

    assert "3 monitors:" in banner
    assert {"  from-argument  (heartbeat)", "  from-option  (heartbeat)"} <= set(banner)
    assert "  too  (heartbeat)" in banner


def test_python_dash_m_devserver_takes_manifest_options_too(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("version: 2\njobs:\n  - {id: x}\n")
    result = subprocess.run(
        [STEADYCRON[0], "-m", "steadycron.cli.devserver", "--manifest", "broken.yaml"],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPOSITORY)),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 2
    assert "steadycron dev-server: error: broken.yaml:3: job #1 has no 'name'" in result.stderr
