"""The benchmark suite: what monitoring costs a job, measured against plain HTTP clients.

Run it with ``python -m benchmarks`` (``--quick`` for a short smoke run). Everything
talks to loopback servers the suite starts itself; nothing leaves 127.0.0.1.
"""
