"""Set Django up before the project's tests are collected (what pytest-django would do)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testsite.settings")
django.setup()
