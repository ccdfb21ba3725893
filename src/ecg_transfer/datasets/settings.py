"""A validated request for one dataset: which protocol, at which rate, length and scaling, and
in which lead order. The index's meta file carries it, so every shard job of the dataset
preprocesses with the same settings."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .leads import STANDARD_LEADS, check_leads
from .protocols import Protocol, get_protocol

SCALINGS = ("none", "minmax")


def n_samples(fs: float, seconds: float) -> int:
    """Samples per record: round(seconds * fs)."""
    return round(seconds * fs)


@dataclass(frozen=True)
class Settings:
    """A validated request: which dataset, under which protocol, at which rate and length.

    `leads` is the order of the leads in every preprocessed record (standard names): the
    shards and checkpoints carry it, so code downstream never has to assume STANDARD_LEADS.
    """

    dataset: str
    protocol: Protocol
    fs: float
    length: int
    scaling: str
    leads: tuple[str, ...] = STANDARD_LEADS

    @classmethod
    def create(
        cls,
        dataset: str,
        protocol: str,
        fs: float,
        seconds: float,
        scaling: str | None,
        file_leads: Sequence[str] | None = None,
    ) -> Settings:
        """`file_leads`: the standard names of the leads in the order the dataset's files store
        them, where that order is fixed for the whole dataset (Ribeiro), else None."""
        proto = get_protocol(protocol)
        if not (math.isfinite(fs) and fs > 0):
            raise ValueError(f"fs must be a positive number of Hz, got {fs!r}")
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"seconds must be a positive duration, got {seconds!r}")
        length = n_samples(fs, seconds)
        if length < 1:
            raise ValueError(f"seconds={seconds!r} at fs={fs!r} gives no samples")
        if scaling is None:
            scaling = proto.scaling_for(dataset)
        if scaling not in SCALINGS:
            raise ValueError(f"unknown scaling {scaling!r}; expected None or one of {SCALINGS}")
        leads = STANDARD_LEADS
        if proto.file_lead_order and file_leads is not None:
            leads = check_leads(file_leads, f"{dataset}'s file lead order")
        return cls(dataset, proto, float(fs), length, scaling, leads)

    def describe(self) -> dict:
        """JSON-able form, enough for `from_description` (the index's meta file carries it)."""
        return {
            "dataset": self.dataset,
            "protocol": self.protocol.name,
            "fs": self.fs,
            "length": self.length,
            "scaling": self.scaling,
            "leads": list(self.leads),
        }

    @classmethod
    def from_description(cls, d: Mapping) -> Settings:
        proto = get_protocol(d["protocol"])
        # An index written before `leads` was recorded was always in STANDARD_LEADS order.
        leads = check_leads(d.get("leads", STANDARD_LEADS), "index meta field settings.leads")
        return cls(d["dataset"], proto, float(d["fs"]), int(d["length"]), d["scaling"], leads)


def canonical_codes(codes: Iterable[str], settings: Settings) -> list[str]:
    """Codes as the protocol scores them: `sound` merges the Challenge's equivalent pairs."""
    eq = settings.protocol.equivalent_codes
    return [eq.get(code, code) for code in codes]
