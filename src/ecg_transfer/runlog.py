"""Logging for workflow jobs: one log file per job, timestamps, and tracebacks in that file."""

from __future__ import annotations

import logging
import os
import sys


def to_file(path: str | os.PathLike) -> None:
    """Send logging and stderr (warnings, tracebacks) of this process to the job's log file.

    Snakemake shows the log path of a failed job; with everything in that one file the user sees
    why it failed without digging.
    """
    stream = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    sys.stderr = stream
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=stream,
        force=True,
    )
