"""Content hashes of records' raw signal bytes: the `sound` protocol keeps records whose signals
are identical (one recording stored under two names) in one split."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path


def hash_bytes(chunks: Iterable[bytes]) -> str:
    """Content hash of a record's raw signal bytes: identical signals under two names collide."""
    h = hashlib.blake2b(digest_size=16)
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def hash_files(paths: Iterable[Path]) -> str:
    return hash_bytes(p.read_bytes() for p in paths)
