"""The manifest loader gives the keys SteadyCron would know, or says exactly what is wrong."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from steadycron.cli.manifest import (
    ManifestError,
    ManifestJob,
    load_manifests,
    read_manifests,
    slugify,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_reads_keys_names_kinds_and_lines(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "monitors.yaml",
        """
        version: 2
        namespace: billing
        jobs:
          - id: ledger-rollup
            name: Ledger rollup
            kind: heartbeat
            schedule: "15 3 * * *"
          - id: warm-search-index
            name: Warm search index
            url: https://internal.example.org/warm
          - id: fleet-agent
            name: Fleet agent
            kind: agent
        """,
    )

    jobs = load_manifests([manifest], environ={})

    assert jobs == {
        "ledger-rollup": ManifestJob(
            key="ledger-rollup",
            name="Ledger rollup",
            kind="heartbeat",
            path=str(manifest),
            line=4,
            schedule="15 3 * * *",
        ),
        "warm-search-index": ManifestJob(
            key="warm-search-index",
            name="Warm search index",
            kind="http",
            path=str(manifest),
            line=8,
        ),
        "fleet-agent": ManifestJob(
            key="fleet-agent", name="Fleet agent", kind="agent", path=str(manifest), line=11
        ),
    }


def test_kind_defaults_to_http_also_when_null(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "m.yaml",
        """
        version: 2
        jobs:
          - {id: a, name: A}
          - {id: b, name: B, kind: null}
        """,
    )

    jobs = load_manifests([manifest], environ={})

    assert [job.kind for job in jobs.values()] == ["http", "http"]


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Nightly DB Backup", "nightly-db-backup"),
        ("  --Warm   search/index!!  ", "warm-search-index"),
        ("ÉTÉ 2024 report", "t-2024-report"),
        ("already-a-slug-42", "already-a-slug-42"),
        ("!!!", "job"),
        ("", "job"),
        ("x" * 70, "x" * 64),
        ("Ab" * 40, "ab" * 32),
    ],
)
def test_slug_rules(name: str, key: str) -> None:
    assert slugify(name) == key


def test_job_without_id_is_keyed_by_the_slug_of_its_name(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "m.yaml",
        """
        version: 2
        jobs:
          - name: Queue Drain (tick)
            kind: heartbeat
            interval: 60
        """,
    )

    jobs = load_manifests([manifest], environ={})

    assert list(jobs) == ["queue-drain-tick"]
    assert jobs["queue-drain-tick"].name == "Queue Drain (tick)"


def test_variables_are_filled_before_parsing(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "m.yaml",
        """
        version: 2
        jobs:
          - id: ${PREFIX}-backup
            name: Backup in ${REGION:-eu-west}
            kind: ${KIND:-heartbeat}
          - id: ${EMPTY:-fallback}
            name: Fallback
        """,
    )

    jobs = load_manifests([manifest], environ={"PREFIX": "prod", "KIND": "agent", "EMPTY": ""})

    assert jobs["prod-backup"].name == "Backup in eu-west"
    assert jobs["prod-backup"].kind == "agent"
    assert "fallback" in jobs


def test_variables_come_from_os_environ_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEADYCRON_TEST_JOB", "from-environ")
    manifest = write(
        tmp_path / "m.yaml", "version: 2\njobs:\n  - {id: '${STEADYCRON_TEST_JOB}', name: X}\n"
    )

    assert list(load_manifests([manifest])) == ["from-environ"]


def test_unset_variable_without_default_names_file_and_line(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "m.yaml",
        """
        version: 2
        jobs:
          - id: fine
            name: Fine
          - id: ${MISSING_VARIABLE}
            name: Broken
        """,
    )

    with pytest.raises(ManifestError) as caught:
        load_manifests([manifest], environ={})

    assert str(caught.value).startswith(f"{manifest}:5: ")
    assert "${MISSING_VARIABLE} is not set" in str(caught.value)
    assert (caught.value.path, caught.value.line) == (str(manifest), 5)


def test_missing_name_is_an_error_with_the_line_of_the_job(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "m.yaml",
        """
        version: 2
        jobs:
          - id: ok
            name: Ok
          - id: nameless
            kind: heartbeat
            interval: 60
        """,
    )

    with pytest.raises(ManifestError, match=r"m\.yaml:5: job #2 has no 'name'"):
        load_manifests([manifest], environ={})


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("version: 2\njobs:\n  - name: ''\n", "'name' must be a non-empty string"),
        ("version: 2\njobs:\n  - name: [a]\n", "'name' must be a non-empty string"),
        ("version: 2\njobs:\n  - name: A\n    id: 7\n", "'id' must be a non-empty string"),
        (
            "version: 2\njobs:\n  - name: A\n    kind: cron\n",
            "'kind' must be one of http, heartbeat, agent",
        ),
        ("version: 2\njobs:\n  - just a string\n", "job #1 must be a mapping"),
        ("jobs: {a: 1}\n", "'jobs' must be a list"),
        ("- a\n- b\n", "the top level must be a mapping"),
    ],
)
def test_malformed_entries_are_refused_with_a_line(tmp_path: Path, body: str, problem: str) -> None:
    manifest = write(tmp_path / "m.yaml", body)

    with pytest.raises(ManifestError) as caught:
        load_manifests([manifest], environ={})

    assert problem in str(caught.value)
    assert caught.value.line is not None
    assert str(caught.value).startswith(f"{manifest}:{caught.value.line}: ")


def test_bad_yaml_reports_the_parser_line(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "m.yaml",
        """
        version: 2
        jobs:
          - name: a
            kind: heartbeat
           schedule: [broken
        """,
    )

    with pytest.raises(ManifestError) as caught:
        load_manifests([manifest], environ={})

    assert str(caught.value).startswith(f"{manifest}:5: invalid YAML")


def test_duplicate_id_within_one_file_names_both_lines(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "m.yaml",
        """
        version: 2
        jobs:
          - {id: backup, name: One}
          - {id: backup, name: Two}
        """,
    )

    with pytest.raises(ManifestError) as caught:
        load_manifests([manifest], environ={})

    assert str(caught.value) == (
        f"{manifest}:4: duplicate job id 'backup', first defined at {manifest}:3"
    )


def test_same_derived_key_twice_is_a_duplicate(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "m.yaml",
        """
        version: 2
        jobs:
          - name: Nightly backup
          - name: nightly-backup
        """,
    )

    with pytest.raises(ManifestError, match="duplicate job id 'nightly-backup'"):
        load_manifests([manifest], environ={})


def test_directory_is_merged_in_path_order(tmp_path: Path) -> None:
    write(tmp_path / "b.yml", "version: 2\njobs:\n  - {id: second, name: Second}\n")
    write(tmp_path / "a.yaml", "version: 2\njobs:\n  - {id: first, name: First}\n")
    write(tmp_path / "notes.txt", "jobs: [this is not read\n")
    write(tmp_path / ".hidden.yaml", "jobs: [this is not read either\n")
    write(tmp_path / "nested" / "c.yaml", "version: 2\njobs:\n  - {id: nested, name: Nested}\n")

    jobs = load_manifests([tmp_path], environ={})

    assert list(jobs) == ["first", "second"]
    assert jobs["second"].path == str(tmp_path / "b.yml")


def test_duplicate_id_across_a_directory_names_both_files(tmp_path: Path) -> None:
    first = write(
        tmp_path / "10-billing.yaml", "version: 2\njobs:\n  - id: backup\n    name: Backup\n"
    )
    second = write(
        tmp_path / "20-ops.yaml",
        "version: 2\njobs:\n  - {id: other, name: O}\n  - {id: backup, name: B}\n",
    )

    with pytest.raises(ManifestError) as caught:
        load_manifests([tmp_path], environ={})

    assert str(caught.value) == (
        f"{second}:4: duplicate job id 'backup', first defined at {first}:3"
    )


def test_the_same_file_given_twice_is_read_once(tmp_path: Path) -> None:
    manifest = write(tmp_path / "m.yaml", "version: 2\njobs:\n  - {id: once, name: Once}\n")

    jobs = load_manifests([manifest, tmp_path, str(manifest)], environ={})

    assert list(jobs) == ["once"]


def test_several_paths_merge_in_the_order_given(tmp_path: Path) -> None:
    later = write(tmp_path / "a.yaml", "version: 2\njobs:\n  - {id: from-a, name: A}\n")
    earlier = write(tmp_path / "z.yaml", "version: 2\njobs:\n  - {id: from-z, name: Z}\n")

    assert list(load_manifests([earlier, later], environ={})) == ["from-z", "from-a"]


def test_empty_manifest_and_manifest_without_jobs_define_nothing(tmp_path: Path) -> None:
    empty = write(tmp_path / "empty.yaml", "")
    no_jobs = write(tmp_path / "channels.yaml", "version: 2\nchannels: {ops: {}}\nextra: 1\n")

    assert load_manifests([empty, no_jobs], environ={}) == {}


def test_unknown_properties_are_warnings_with_the_closest_known_name(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "m.yaml",
        """
        version: 2
        future_setting: {anything: [1, 2]}
        jobs:
          - id: x
            name: X
            kind: heartbeat
            interval: 60
            shedule: "0 3 * * *"
            something_new: true
            rules: [{when: fail, notify: ops}]
        """,
    )

    read = read_manifests([manifest], environ={})

    assert read.jobs["x"].kind == "heartbeat"
    assert [(w.severity, w.line, w.message) for w in read.warnings] == [
        ("warning", 2, "unknown field 'future_setting' at the top level is ignored"),
        (
            "warning",
            8,
            "unknown field 'shedule' in job 'X' is ignored; did you mean 'schedule'?",
        ),
        ("warning", 9, "unknown field 'something_new' in job 'X' is ignored"),
    ]
    assert str(read.warnings[1]).startswith(f"{manifest}:8: ")


def test_missing_file_and_empty_directory_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"nope\.yaml: no such file"):
        load_manifests([tmp_path / "nope.yaml"], environ={})

    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match=r"empty: directory holds no \*\.yaml"):
        load_manifests([tmp_path / "empty"], environ={})


def test_non_utf8_file_is_an_error(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_bytes(b"version: 2\njobs:\n  - name: \xff\xfe\n")

    with pytest.raises(ManifestError, match="not UTF-8"):
        load_manifests([manifest], environ={})


def test_manifest_error_is_a_value_error_and_works_without_a_place() -> None:
    error = ManifestError("something is off")

    assert isinstance(error, ValueError)
    assert str(error) == "something is off"
    assert (error.path, error.line, error.reason) == (None, None, "something is off")
