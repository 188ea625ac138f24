"""Framework integrations: Celery, APScheduler, Django, RQ.

Each lives in a module of its own, is an optional extra (``steadycron[celery]``, ...) and
imports its framework only when it is used. ``import steadycron`` never imports this
package.
"""
