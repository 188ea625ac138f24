"""A monitored job as a user writes it: settings from ``STEADYCRON_*``, trust from SSL_CERT_FILE."""

import steadycron


@steadycron.job("cold-job")
def job() -> None:
    """The job's own work is nothing, so what is measured is the monitoring."""


job()
