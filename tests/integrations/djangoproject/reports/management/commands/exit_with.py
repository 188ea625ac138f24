import sys
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Leave through sys.exit(CODE)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("code", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        sys.exit(options["code"])
