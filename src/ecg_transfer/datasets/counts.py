"""The record counts the paper's notebooks printed, as a check on a run of the paper protocol.

The notebooks (cuongvng/transfer-learning-ecg-diagnosis, `*/preprocess_data.ipynb`) show how
many records each dataset had, how many survived preprocessing and how `train_test_split(...,
test_size=0.33, random_state=1)` divided them. A paper-protocol index that disagrees read another
release of the dataset, a damaged copy, or a rule that differs from the paper's; the index stage
logs the difference and stores it in the shards' attributes instead of failing, because a user
may run the paper protocol on a subset or at another rate on purpose.

CPSC2018 and Georgia drop the records shorter than 10 s (`if l < LENGTH: continue` after `[::5]`,
the same rule as `IndexBuilder.add`); PTB drops the records without a reason for admission
(`meta.dropna()`); Ribeiro drops none. PTB-XL has no entry: the paper's PTB-XL notebook is not in
its repository, so its counts are unknown.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperCounts:
    """One dataset's counts in the paper's notebooks (the output cells, quoted in comments)."""

    records: int  # records the notebook read
    kept: int  # records left after its preprocessing
    train: int
    test: int


PAPER_COUNTS: dict[str, PaperCounts] = {
    # pretrain/cpsc/preprocess_data.ipynb: tqdm 6877/6877; X.shape (6871, 1000, 12);
    # X_train.shape (4603, 1000, 12), so 2268 test
    "cpsc2018": PaperCounts(records=6877, kept=6871, train=4603, test=2268),
    # pretrain/georgia/preprocess_data.ipynb: tqdm 10344/10344; X.shape (10292, 1000, 12);
    # X_train.shape (6895, 1000, 12), so 3397 test
    "georgia": PaperCounts(records=10344, kept=10292, train=6895, test=3397),
    # downstream/ptb/preprocess_data.ipynb: meta 549 rows; 522 after dropna; y_test.shape (173, 2)
    "ptb": PaperCounts(records=549, kept=522, train=349, test=173),
    # downstream/ribero/preprocess_data.ipynb: X.shape (827, 4096, 12); split 0.33 of 827
    "ribeiro": PaperCounts(records=827, kept=827, train=554, test=273),
}

# The conditions the counts hold under (config: fs 100 Hz, 10 s, split.test_size 0.33).
_CONDITIONS = "the paper's notebooks, at 100 Hz, 10 s, test_size 0.33"


def expected_count_warnings(
    name: str, n_records: int, n_ok: int, n_train: int, n_test: int
) -> list[str]:
    """One message per count of dataset `name` that differs from the paper's, naming both
    numbers; empty when all match or when the paper's counts are unknown (PTB-XL).

    `n_records` is every record the index found (kept, dropped and bad), `n_ok` those that
    survive preprocessing, `n_train` and `n_test` the split of those (a validation split carved
    from train makes `n_train` differ, as the paper had none). Call it for protocol `paper` only:
    `sound` drops and splits differently by design.
    """
    paper = PAPER_COUNTS.get(name)
    if paper is None:
        return []
    ours = {"records": n_records, "kept": n_ok, "train": n_train, "test": n_test}
    what = {
        "records": "records found",
        "kept": "records kept after preprocessing",
        "train": "train records",
        "test": "test records",
    }
    return [
        f"{name}: {ours[key]} {what[key]}; {_CONDITIONS} had {getattr(paper, key)}"
        for key in ("records", "kept", "train", "test")
        if ours[key] != getattr(paper, key)
    ]
