"""The cold-process job, written twice: with steadycron, and with the standard library alone."""
