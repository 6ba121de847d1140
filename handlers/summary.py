"""`python -m handlers.summary`: the report command, by the name it has always had (README, `dev.py report`,
scripts run on the deploy package). The command itself is handlers/operations/report_command/."""
import sys

from handlers.operations.report_command.command import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
