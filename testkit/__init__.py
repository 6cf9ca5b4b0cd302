"""Test support code that is not itself a test: the fake Slack, HTTP and process harnesses,
in-memory fakes, database set-up and seed helpers.

`tests/` and `bench/` import from here; nothing here imports from `tests/`. It is importable
from the repository root (where `python -m pytest` and `python -m bench` run) and is not
part of the installed packages."""
