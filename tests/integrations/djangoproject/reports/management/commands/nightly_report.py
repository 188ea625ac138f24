from typing import Any

from steadycron.integrations.django import MonitoredCommand


class Command(MonitoredCommand):
    help = "Send the nightly report."
    steadycron_key = "nightly-report"

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write("report sent")
