"""The `rightsizer` command line: plan, policy, crds, models and run."""

from rightsizer.cli.main import main

__all__ = ["main"]
