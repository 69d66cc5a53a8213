"""What every command shares: the usage error and its exit status."""

from __future__ import annotations

EXIT_USAGE = 2


class UsageError(Exception):
    """A problem with the command's input: printed as one line, exit status 2."""
