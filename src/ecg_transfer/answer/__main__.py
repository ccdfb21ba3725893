"""``python -m ecg_transfer.answer rejudge RESULTS --out DIR [--margin-f1 X] [--level L] ...``

Re-judges a finished run from its results folder alone (no Snakemake, no training): every
table, figure and claim again, with other margins, level or bootstrap settings, into DIR.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ecg_transfer.answer import rejudge
from ecg_transfer.answer.rules import Plan

#: Plan keys settable from the command line: --margin-f1 sets margin_f1, and so on.
_FLOAT_KEYS = ("level", "margin_f1", "margin_epochs", "margin_retention",
               "convergence_tolerance")
_INT_KEYS = ("min_test_records", "min_class_positives")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecg_transfer.answer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("rejudge", help="the answer again from a results folder, another plan")
    p.add_argument("results", help="the results folder the workflow wrote (holds "
                                   "answer_inputs.json)")
    p.add_argument("--out", required=True, help="where to write (not the results folder)")
    for key in _FLOAT_KEYS:
        p.add_argument("--" + key.replace("_", "-"), type=float, dest=key,
                       help=f"results.{key} (default: the run's)")
    for key in _INT_KEYS:
        p.add_argument("--" + key.replace("_", "-"), type=int, dest=key,
                       help=f"results.{key} (default: the run's)")
    p.add_argument("--n-boot", type=int, help="bootstrap replicates (default: the run's)")
    p.add_argument("--seed", type=int, help="bootstrap seed (default: the run's)")
    args = parser.parse_args(argv)
    changes = {k: getattr(args, k) for k in Plan.__dataclass_fields__
               if getattr(args, k, None) is not None}
    try:
        paths = rejudge(args.results, args.out, changes=changes, n_boot=args.n_boot,
                        seed=args.seed)
    except ValueError as err:
        print(f"rejudge: {err}", file=sys.stderr)
        return 2
    print(f"rejudge: wrote {len(paths)} files to {args.out}; the verdicts are in "
          f"{paths['claims']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
