"""Lead names: the standard 12-lead order and the spellings the datasets' files use for it."""

from __future__ import annotations

from collections.abc import Sequence

STANDARD_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")

# Lower-cased spellings found in the datasets' files -> standard name. Ribeiro's CODE uses the
# Brazilian DI/DII/DIII for the limb leads; PTB writes everything in lower case; PTB-XL upper.
_LEAD_ALIASES = {lead.lower(): lead for lead in STANDARD_LEADS} | {
    "di": "I",
    "dii": "II",
    "diii": "III",
}


def standard_lead(name: str) -> str | None:
    """The standard name of a lead as a file spells it, or None for a non-standard signal."""
    return _LEAD_ALIASES.get(name.strip().lower())


def lead_indices(names: Sequence[str], source: object) -> list[int]:
    """Positions in `names` of the 12 standard leads, in STANDARD_LEADS order.

    Signals that are not standard leads (PTB's Frank leads vx, vy, vz) are left out; a missing
    or repeated standard lead is an error, because silently shifting leads would train a model on
    the wrong electrodes.
    """
    found: dict[str, int] = {}
    for index, name in enumerate(names):
        lead = standard_lead(name)
        if lead is None:
            continue
        if lead in found:
            raise ValueError(
                f"{source}: lead {lead} appears twice (signals {found[lead]} and {index}); "
                f"leads found: {list(names)}"
            )
        found[lead] = index
    missing = [lead for lead in STANDARD_LEADS if lead not in found]
    if missing:
        raise ValueError(
            f"{source}: missing standard lead(s) {missing}; leads found: {list(names)}; "
            f"expected all of {list(STANDARD_LEADS)}"
        )
    return [found[lead] for lead in STANDARD_LEADS]


def check_leads(leads: Sequence[str], source: object) -> tuple[str, ...]:
    """`leads` as a tuple, if it is the 12 standard names in some order."""
    leads = tuple(leads)
    if sorted(leads) != sorted(STANDARD_LEADS):
        raise ValueError(
            f"{source}: {list(leads)}; expected the 12 standard leads {list(STANDARD_LEADS)} "
            "in some order"
        )
    return leads
