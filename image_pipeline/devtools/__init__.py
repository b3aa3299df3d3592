"""Local-only tooling for the tests, the demo and benchmarks: emulator processes, the demo's HTML page.

Never deployed (`.gcloudignore` leaves this package out); nothing the function or the backfill runs imports it.
"""
