"""What goes wrong with one record, and what the index and shard stages do about it.

A record whose files are missing, truncated or contradict each other is a `BadRecordError`:
with `on_bad_record="error"` the first one stops the job, naming the file and the reason; with
"skip" it is left out and listed in the part's quarantine CSV. Problems of a whole dataset (no
label file, an HDF5 file that does not open) are plain ValueError/FileNotFoundError: there is no
record to skip.
"""

from __future__ import annotations

ON_BAD_RECORD = ("error", "skip")


class BadRecordError(ValueError):
    """One record cannot be used: its files are missing, truncated or contradict each other.

    Carries what a quarantine list needs (record id, file, reason). A ValueError, so callers that
    only know "bad input" keep working. Problems of a whole dataset (no label file, an HDF5 file
    that does not open) are plain ValueError/FileNotFoundError: there is no record to skip.
    """

    def __init__(self, record_id: str, file: object, reason: str) -> None:
        self.record_id = str(record_id)
        self.file = str(file)
        # Messages from lower layers usually start with the file already ("file: ..." or
        # "file, line N: ..."); do not say it twice.
        separator = ": "
        for prefix in (f"{self.file}: ", f"{self.file}, "):
            if reason.startswith(prefix):
                reason, separator = reason[len(prefix) :], prefix[len(self.file) :]
                break
        self.reason = reason
        super().__init__(f"{self.file}{separator}{self.reason} (record {self.record_id})")


def as_bad_record(record_id: str, file: object, exc: Exception) -> BadRecordError:
    """A reader's error about one record, as the BadRecordError a quarantine list takes."""
    if isinstance(exc, BadRecordError):
        return exc
    return BadRecordError(record_id, file, str(exc))


def check_on_bad_record(value: str) -> str:
    if value not in ON_BAD_RECORD:
        raise ValueError(f"on_bad_record is {value!r}; expected one of {list(ON_BAD_RECORD)}")
    return value
