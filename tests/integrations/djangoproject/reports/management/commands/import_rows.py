from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Import rows; a plain command that steadycron monitors by its name in settings."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--fail", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["fail"]:
            raise CommandError("3 rows rejected")
        self.stdout.write("rows imported")
