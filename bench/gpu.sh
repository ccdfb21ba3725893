#!/usr/bin/env bash
# The training benchmarks on a machine with a GPU, in under 8 minutes, with no network:
#   1. find a Python whose torch sees CUDA (the project's .venv has the CPU build);
#   2. check that ecg_transfer imports with it (PYTHONPATH=src; pure-Python wheels missing
#      there, e.g. wfdb, are installed offline from .whl/ when that folder was carried);
#   3. GPU placement: two concurrent jobs claim devices with ecg_transfer.gpu.claim_device;
#      with two GPUs they get different ones, with one the second waits for the first;
#   4. bench/train_step.py on CUDA for every architecture, fp32 (TF32 allowed) alone and as
#      several jobs sharing the GPU; then the levers of training.speed on three architectures
#      (torch.compile reduce-overhead, i.e. with CUDA graphs, and a 2048-record scoring batch);
#      then bf16 if the engine's TrainSettings has `precision`;
#   5. the whole paper study's estimate against the goal: <= 1 GPU-hour on an H100-class GPU.
# Prints a table; with $OUT set also writes everything to $OUT/gpu_bench.txt.
# Exit status: 0 all checks passed, 1 a check failed, 2 no CUDA (after the checks that need
# none), 3 ecg_transfer cannot be imported.
#
#   bash bench/gpu.sh     # env: GPU_BENCH_RECORDS=8192 GPU_BENCH_CONCURRENT=3 GPU_BENCH_BUDGET_S=470
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUDGET_S=${GPU_BENCH_BUDGET_S:-470}       # whole script; each step gets at most what is left
RECORDS=${GPU_BENCH_RECORDS:-8192}        # 5488 train (549 of them validation), 2704 test
CONCURRENT=${GPU_BENCH_CONCURRENT:-3}     # fp32 jobs run at once to measure GPU sharing
GOAL_HOURS=1
STARTED=$SECONDS

left() { echo $((BUDGET_S - (SECONDS - STARTED))); }

# Run "$@" under a time limit of min($1, what is left of the budget) seconds.
step() {
  local limit=$1 rest
  shift
  rest=$(left)
  ((rest < limit)) && limit=$rest
  if ((limit < 5)); then
    echo "!! time budget spent, skipping: $*"
    return 124
  fi
  timeout --kill-after=10 "$limit" "$@"
}

pick_python() {
  # First interpreter whose torch sees a GPU; else one that at least imports torch.
  local py fallback=""
  for py in ${ECG_PYTHON:-} python3 /opt/torch/.venv/bin/python3 python .venv/bin/python; do
    command -v "$py" >/dev/null 2>&1 || continue
    if out=$(timeout 90 "$py" -c 'import torch; print(torch.cuda.is_available())' 2>/dev/null)
    then
      [[ $out == True ]] && { echo "$py"; return; }
      [[ -z $fallback ]] && fallback=$py
    fi
  done
  [[ -n $fallback ]] && { echo "$fallback"; return; }
  return 1
}

main() {
  local py cuda site rc=0
  echo "== bench/gpu.sh  $(date -u +%FT%TZ)  ${HOSTNAME:-?}  $(nproc) CPUs, budget ${BUDGET_S} s"
  command -v nvidia-smi >/dev/null && timeout 30 nvidia-smi -L || echo "(no nvidia-smi)"

  if ! py=$(pick_python); then
    echo "!! no Python with torch found (tried \$ECG_PYTHON, python3, python, .venv/bin/python)"
    return 3
  fi
  export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
  export PYTHONUNBUFFERED=1
  cuda=$(timeout 90 "$py" -c 'import torch; print(int(torch.cuda.is_available()))')
  timeout 90 "$py" -c 'import sys, torch
n = torch.cuda.device_count() if torch.cuda.is_available() else 0
print(f"interpreter {sys.executable} (python {sys.version.split()[0]}), torch {torch.__version__},"
      f" CUDA {torch.version.cuda}, available: {bool(n)}, devices: {n}",
      *(torch.cuda.get_device_name(i) for i in range(n)))'

  # ecg_transfer's own needs; a pure-Python one missing on this image can come as a wheel.
  local probe='import ecg_transfer.train, ecg_transfer.gpu, ecg_transfer.datasets'
  if ! timeout 120 "$py" -c "$probe" 2>/tmp/ecg-import.err; then
    if compgen -G ".whl/*.whl" >/dev/null; then
      site=$(mktemp -d /tmp/ecg-site.XXXX)
      echo "installing carried wheels offline into $site: $(ls .whl)"
      "$py" -m pip install -q --no-index --no-deps --no-compile --target "$site" .whl/*.whl
      export PYTHONPATH="$PYTHONPATH:$site"
    fi
    if ! timeout 120 "$py" -c "$probe" 2>/tmp/ecg-import.err; then
      tail -3 /tmp/ecg-import.err
      echo "!! ecg_transfer does not import with $py. If a module is missing, download its"
      echo "   wheel here (e.g. pip download --no-deps -d .whl wfdb==4.3.1), list .whl in"
      echo "   .git/info/exclude and carry .whl with the working tree."
      return 3
    fi
  fi

  echo
  echo "== GPU placement: two concurrent jobs call ecg_transfer.gpu.claim_device"
  # Outside SLURM's allotment logic on purpose: this checks the local lock slots.
  if ! step 60 env -u SLURM_JOB_ID "$py" - "$cuda" <<'EOF'; then rc=1; fi
import subprocess, sys, tempfile, time
import torch
cuda = sys.argv[1] == "1"
n = torch.cuda.device_count() if cuda else 1  # without CUDA: one fake slot
lock_dir = tempfile.mkdtemp(prefix="ecg-gpu-locks-")
job = f"""
import logging, sys, time
from ecg_transfer.gpu import claim_device
logging.basicConfig(level=logging.INFO, format="  [%(name)s] %(message)s")
with claim_device(lock_dir={lock_dir!r}, visible={None if cuda else 1}, poll_seconds=0.1) as d:
    print("CLAIM", d, time.time(), flush=True)
    time.sleep(4)
    print("DONE", d, time.time(), flush=True)  # the claim is released right after this
"""
jobs = [subprocess.Popen([sys.executable, "-c", job], stdout=subprocess.PIPE, text=True)]
time.sleep(0.5)
jobs.append(subprocess.Popen([sys.executable, "-c", job], stdout=subprocess.PIPE, text=True))
events = []
for p in jobs:
    out, _ = p.communicate(timeout=45)
    ev = {kind: (dev, float(at)) for kind, dev, at in map(str.split, out.splitlines())}
    events.append((ev["CLAIM"][1], ev["CLAIM"][0], ev["DONE"][1]))
(claim1, dev1, done1), (claim2, dev2, _) = sorted(events)  # in the order they claimed
print(f"visible devices: {n}{'' if cuda else ' (fake, no CUDA)'}; the first job got {dev1}, "
      f"the second got {dev2} {claim2 - done1:+.2f} s after the first finished")
if n >= 2:
    ok = dev1 != dev2 and claim2 < done1
    print("PASS: different devices, no waiting" if ok else "FAIL: expected different devices")
else:
    ok = dev1 == dev2 and claim2 >= done1
    print("PASS: one device; the second job waited for the first" if ok
          else "FAIL: the second job did not wait")
sys.exit(0 if ok else 1)
EOF

  if [[ $cuda != 1 ]]; then
    echo
    echo "!! CUDA is not available to $py: the GPU benchmarks cannot run here."
    return 2
  fi

  local tmp
  tmp=$(mktemp -d /tmp/ecg-gpu-bench.XXXX)
  echo
  echo "== bench/train_step.py on cuda, fp32 (TF32 allowed), $RECORDS records, batch 256;"
  echo "   then $CONCURRENT such jobs at once on the GPU"
  if ! step 220 "$py" bench/train_step.py --device cuda --records "$RECORDS" \
      --batch-size 256 --epochs 3 --concurrent "$CONCURRENT" --json "$tmp/fp32.json"; then
    echo "!! fp32 benchmark failed or ran out of time"
    rc=1
  fi

  echo
  echo "== the levers (training.speed): torch.compile reduce-overhead (CUDA graphs) and a"
  echo "   2048-record scoring batch, fp32, on resnet1d18, resnet1d101 and gru; the warm-up"
  echo "   epoch takes the compile time"
  if ! step 150 "$py" bench/train_step.py --device cuda --records "$RECORDS" \
      --batch-size 256 --epochs 2 --archs resnet1d18,resnet1d101,gru \
      --compile reduce-overhead --eval-batch-size 2048 --json "$tmp/fp32-compiled.json"; then
    echo "!! compiled benchmark failed or ran out of time"
    rc=1
  fi

  echo
  if timeout 60 "$py" -c 'import dataclasses, sys
from ecg_transfer.train import TrainSettings
sys.exit(0 if "precision" in {f.name for f in dataclasses.fields(TrainSettings)} else 1)'; then
    echo "== bench/train_step.py on cuda, bf16 autocast"
    if ! step 90 "$py" bench/train_step.py --device cuda --records "$RECORDS" \
        --batch-size 256 --epochs 3 --precision bf16 --json "$tmp/bf16.json"; then
      echo "!! bf16 benchmark failed or ran out of time"
      rc=1
    fi
  else
    echo "== bf16 skipped: ecg_transfer.train.TrainSettings has no 'precision' field"
  fi

  echo
  echo "== summary (goal: whole paper study <= $GOAL_HOURS GPU-hours on an H100-class GPU)"
  if ! timeout 60 "$py" - "$tmp" "$GOAL_HOURS" <<'EOF'; then rc=1; fi
import json, pathlib, sys
tmp, goal = pathlib.Path(sys.argv[1]), float(sys.argv[2])
runs = {p.stem: json.loads(p.read_text()) for p in sorted(tmp.glob("*.json"))}
if not runs:
    print("FAIL: no benchmark results"); sys.exit(1)
archs = list(dict.fromkeys(r["arch"] for run in runs.values() for r in run["results"]))
head = f"{'arch':<12}" + "".join(
    f" | {k + ' train/s':>13} {'bare':>7} {'ratio':>5} {'eval':>6} {'save s':>6} {'study h':>7}"
    f" {'shared':>6}" for k in runs)
print(head); print("-" * len(head))
print("(shared: throughput of that many jobs at once over one job's)")
for arch in archs:
    line = f"{arch:<12}"
    for run in runs.values():
        r = next((r for r in run["results"] if r["arch"] == arch), None)
        shared = (f"{r['concurrent_speedup']:.2f}x" if r and r.get("concurrent_speedup")
                  else "")
        line += (f" | {r['engine_sps']:>13.0f} {r['bare_sps']:>7.0f} {r['ratio']:>5.2f}"
                 f" {r['eval_share']:>6.1%} {r['save_s']:>6.2f} {r['study_hours']:>7.2f}"
                 f" {shared:>6}"
                 if r else f" | {'failed':>13} {'':>7} {'':>5} {'':>6} {'':>6} {'':>7} {'':>6}")
    print(line)
for k, run in runs.items():
    peaks = {r["arch"]: r["peak_bytes"] for r in run["results"] if r.get("peak_bytes")}
    if peaks:  # what one job needs, for gpu.jobs_per_gpu (README: the default is 1)
        print(f"peak memory of one job ({k}): "
              + ", ".join(f"{a} {b / 1e9:.2f} GB" for a, b in peaks.items()))
met = []
for k, run in runs.items():
    complete = not run["errors"] and len(run["results"]) == 6
    verdicts = [(f"{k}, one job at a time", run["study_hours"])]
    if run.get("study_hours_concurrent"):
        verdicts.append((f"{k}, {run['concurrent']} jobs sharing the GPU",
                         run["study_hours_concurrent"]))
    for label, hours in verdicts:
        if complete and hours <= goal:
            met.append(label)
        print(f"{label}: whole study {hours:.2f} GPU-hours on {run['device_name']} "
              + ("(all 6 architectures)" if complete else
                 f"(INCOMPLETE: {len(run['results'])} of 6 architectures; errors {run['errors']})"))
print(f"PASS: goal met with {'; '.join(met)}" if met else f"FAIL: nothing within {goal} h")
sys.exit(0 if met else 1)
EOF
  echo "== done in $((SECONDS - STARTED)) s"
  return "$rc"
}

# With pipefail, set -e exits with main's status when it fails; tee's never masks it.
if [[ -n ${OUT:-} ]]; then
  mkdir -p "$OUT"
  main "$@" 2>&1 | tee "$OUT/gpu_bench.txt"
else
  main "$@"
fi
