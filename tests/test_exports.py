"""The public surface: complete, sorted, importable."""

from __future__ import annotations

import traceback

import steadycron
import steadycron.testing
import steadycron.transports


def test_all_is_sorted_and_complete() -> None:
    for module in (steadycron, steadycron.transports, steadycron.testing):
        names = module.__all__
        assert list(names) == sorted(names), module.__name__
        for name in names:
            assert getattr(module, name) is not None, name


def test_the_documented_names_are_exported() -> None:
    documented = {
        "Config", "SteadyCron", "Monitor", "job", "monitor", "configure", "default_client",
        "clear_cache", "SteadyCronError", "ConfigurationError", "AuthenticationError",
        "MonitorNotFoundError", "AmbiguousJobKeyError", "InvalidMonitorKindError",
        "ResolutionUnavailableError", "__version__",
    }  # fmt: skip
    assert documented <= set(steadycron.__all__)
    transports = {
        "Transport", "Request", "Response", "TransportError", "Urllib3Transport",
        "StdlibTransport", "InMemoryTransport", "NullTransport",
    }  # fmt: skip
    assert transports <= set(steadycron.transports.__all__)


def test_every_error_derives_from_steadycron_error() -> None:
    errors = [
        getattr(steadycron, name)
        for name in steadycron.__all__
        if name.endswith("Error") and isinstance(getattr(steadycron, name), type)
    ]
    assert len(errors) >= 8
    assert all(issubclass(error, steadycron.SteadyCronError) for error in errors)
    assert issubclass(steadycron.transports.TransportError, steadycron.SteadyCronError)


def test_public_errors_show_the_name_users_import() -> None:
    errors = [
        getattr(steadycron, name)
        for name in steadycron.__all__
        if name.endswith("Error") and isinstance(getattr(steadycron, name), type)
    ]
    assert all(error.__module__ == "steadycron" for error in errors), errors
    transport_errors = ["ConnectError", "TransportTimeoutError", "ProtocolError"]
    for name in transport_errors:
        assert getattr(steadycron.transports, name).__module__ == "steadycron.transports"
    shown = traceback.format_exception_only(steadycron.MonitorNotFoundError("k"))
    assert shown[-1].startswith("steadycron.MonitorNotFoundError: monitor key 'k'")
