"""The study runs on a real SLURM cluster through workflow/profiles/slurm.

A single-node cluster (munged, MariaDB, slurmdbd, slurmctld, slurmd; two fake GPUs) is started
on localhost from Debian's packages by tests/slurm/cluster.sh and stopped afterwards, also when
a test fails. If it cannot start, the test fails with the daemons' logs: a skip would hide
exactly the breakage this test exists for. Needs root and the packages that
`bash run.sh test --with-slurm` installs (munge slurm-wlm slurmctld slurmd slurm-client slurmdbd
mariadb-server).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from tiny_study import REPO, SNAKEMAKE, tiny_config, write_config

pytestmark = pytest.mark.slow

CLUSTER_SH = REPO / "tests" / "slurm" / "cluster.sh"
TRAINING_RULES = {"pretrain", "finetune", "train_scratch"}
# Rules submitted to SLURM that ask for no GPU (the rest of the data stage is localrules).
CPU_RULES = {"index_dataset", "make_shard"}
LOCAL_RULES = {"make_demo_archive", "download", "extract", "aggregate", "plot_curves"}


@dataclass
class Cluster:
    state: Path
    env: dict[str, str]

    def run(self, *args: str) -> str:
        out = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=60,
                             check=False)
        assert out.returncode == 0, f"{' '.join(args)}: {out.stdout}{out.stderr}"
        return out.stdout


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # Not under pytest's tmp_path (mode 0700): the munge and mysql users must reach the files.
    state = Path(tempfile.mkdtemp(prefix="ecg-slurm-"))
    state.chmod(0o755)
    ctld, slurmd, dbd, mysql = _free_ports(4)
    env = {**os.environ, "SLURMCTLD_PORT": str(ctld), "SLURMD_PORT": str(slurmd),
           "SLURMDBD_PORT": str(dbd), "MYSQL_PORT": str(mysql),
           "SLURM_CONF": str(state / "etc" / "slurm.conf")}
    try:
        started = subprocess.run(["bash", str(CLUSTER_SH), "start", str(state)], env=env,
                                 capture_output=True, text=True, timeout=240, check=False)
        if started.returncode != 0:
            pytest.fail(f"the SLURM test cluster did not start (tests/slurm/cluster.sh):\n"
                        f"{started.stdout}\n{started.stderr}", pytrace=False)
        yield Cluster(state, env)
    finally:
        subprocess.run(["bash", str(CLUSTER_SH), "stop", str(state)], env=env,
                       capture_output=True, text=True, timeout=120, check=False)
        shutil.rmtree(state, ignore_errors=True)


def study_config() -> dict:
    return tiny_config(records={"ptbxl": 30, "ptb": 30}, architectures=["gru"],
                       upstream=["ptbxl"], downstream=["ptb"], epochs=2)


def _slurm_command(tmp_path: Path, cfg: dict) -> tuple[Path, list[str]]:
    """The study ``cfg`` in a new folder, and the command that runs it through a copy of
    workflow/profiles/slurm edited for the test cluster."""
    work = tmp_path / "slurm"
    work.mkdir()
    write_config(work, cfg)
    # What a user does: copy the profile and edit its placeholders (one place) for the cluster.
    profile = tmp_path / "profile"
    shutil.copytree(REPO / "workflow" / "profiles" / "slurm", profile)
    text = (profile / "config.yaml").read_text()
    for key, value in {"slurm_partition": '"debug"', "mem_mb": "1000", "runtime": "30"}.items():
        text, n = re.subn(rf"^(  {key}:) .*$", rf"\1 {value}", text, flags=re.M)
        assert n == 1, f"workflow/profiles/slurm/config.yaml: no default-resources key {key}"
    (profile / "config.yaml").write_text(text)
    # timeout -k: the plugin can hang on status checks and ignore SIGTERM (issue 5).
    cmd = ["timeout", "-k", "15", "420", SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(work), "--configfile", str(work / "config.yaml"),
           "--profile", str(profile), "--slurm-init-seconds-before-status-checks", "5",
           "--slurm-keep-successful-logs", "--latency-wait", "5", "--cores", "1"]
    return work, cmd


def _check_finished(cluster: Cluster, returncode: int, output: str) -> None:
    if returncode != 0:
        logs = subprocess.run(["bash", str(CLUSTER_SH), "logs", str(cluster.state)],
                              env=cluster.env, capture_output=True, text=True, check=False)
        pytest.fail(f"snakemake --profile slurm failed ({returncode}):\n{output}\n"
                    f"{logs.stderr}", pytrace=False)


def _run_through_slurm(cluster: Cluster, tmp_path: Path) -> tuple[Path, str]:
    """The tiny study through a copy of workflow/profiles/slurm: its folder and output."""
    work, cmd = _slurm_command(tmp_path, study_config())
    out = subprocess.run(cmd, env=cluster.env, cwd=work, capture_output=True, text=True,
                         timeout=480, check=False)
    output = out.stdout + out.stderr
    _check_finished(cluster, out.returncode, output)
    return work, output


def _start_local(tmp_path: Path, cfg: dict) -> tuple[Path, subprocess.Popen]:
    """The same study run locally, the reference: started first (it trains while the SLURM run
    waits on the queue), collected with :func:`_local_finished`."""
    local = tmp_path / "local"
    local.mkdir()
    write_config(local, cfg)
    run = subprocess.Popen(
        [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(local),
         "--configfile", str(local / "config.yaml"), "--cores", "1"],
        cwd=local, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return local, run


def _local_finished(run: subprocess.Popen) -> None:
    output, _ = run.communicate(timeout=600)
    assert run.returncode == 0, f"the local reference run failed:\n{output}"


def _same_numbers(local: Path, work: Path) -> None:
    """Same numbers as the local run (CPU training is deterministic); only timings differ."""
    metrics = sorted((local / "results").glob("*/**/metrics.csv"))
    assert len(metrics) == 3
    for path in metrics:
        there = work / path.relative_to(local)
        ours, theirs = pd.read_csv(path), pd.read_csv(there)
        timing = [c for c in ours.columns if "second" in c or c in {"eta", "time"}]
        pd.testing.assert_frame_equal(ours.drop(columns=timing), theirs.drop(columns=timing))
    assert (work / "results" / "tables" / "f1.csv").read_text() == \
        (local / "results" / "tables" / "f1.csv").read_text()


def test_profile_submits_training_with_gpus_and_matches_a_local_run(cluster, tmp_path):
    local, local_run = _start_local(tmp_path, study_config())
    try:
        work, output = _run_through_slurm(cluster, tmp_path)
    finally:
        _local_finished(local_run)

    # Every non-local job went through sbatch: the log names its SLURM job id.
    job_ids = set(re.findall(r"SLURM jobid (\d+)", output))
    assert len(job_ids) == 3 + 4, output  # pretrain, finetune, scratch; 2 x (index, shard)

    # sacct: the jobs, their rules (the plugin's --comment) and what they were allocated.
    rows = cluster.run("sacct", "-X", "-n", "-P", "-j", ",".join(sorted(job_ids)),
                       "-o", "JobID,State,AllocTRES,Comment").splitlines()
    by_rule: dict[str, list[tuple[str, str]]] = {}
    seen = set()
    for row in rows:
        job_id, state, tres, comment = row.split("|", 3)
        seen.add(job_id)
        rule = re.match(r"rule_(\w+?)(?:_wildcards_|$)", comment)
        assert rule, f"sacct comment {comment!r} names no rule"
        by_rule.setdefault(rule[1], []).append((state, tres))
        assert state == "COMPLETED", row
    assert seen == job_ids, rows
    assert set(by_rule) == TRAINING_RULES | CPU_RULES, by_rule
    for rule in TRAINING_RULES:
        for _, tres in by_rule[rule]:
            assert "gres/gpu=1" in tres.split(","), (rule, tres)
    for rule in CPU_RULES:
        for _, tres in by_rule[rule]:
            assert "gres/gpu" not in tres, (rule, tres)

    _same_numbers(local, work)


def _interrupted_config() -> dict:
    """The tiny study with epochs enough to interrupt a job between two of them, and a resume
    state written after every epoch (resume_interval_s changes no number)."""
    cfg = study_config()
    for stage in cfg["training"].values():
        stage["epochs"] = 40
    cfg["training"]["resume_interval_s"] = 0
    return cfg


def _running(cluster: Cluster, work: Path, resume: dict[str, str]) -> dict[str, str]:
    """SLURM job id -> rule of the running study jobs of ``resume``'s rules that have written a
    resume state (``resume``: rule -> its resume folder under ``work``)."""
    out = cluster.run("squeue", "-h", "-t", "RUNNING", "-o", "%i|%k")
    found = {}
    for line in out.splitlines():
        job_id, comment = line.split("|", 1)
        rule = re.match(r"rule_(\w+?)(?:_wildcards_|$)", comment)
        if rule and rule[1] in resume and (work / resume[rule[1]] / "state.pt").is_file():
            found[job_id] = rule[1]
    return found


def _wait_for(what: str, find, run: subprocess.Popen, timeout: float = 240) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.poll() is not None:
            pytest.fail(f"snakemake ended before {what}:\n{run.communicate()[0]}", pytrace=False)
        found = find()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"{what}: not within {timeout} s", pytrace=False)


def _states(cluster: Cluster, job_id: str) -> list[str]:
    """Every state the job has been in (sacct -D lists each run of a requeued job)."""
    out = cluster.run("sacct", "-D", "-X", "-n", "-P", "-j", job_id, "-o", "State")
    return [line.strip() for line in out.splitlines() if line.strip()]


def test_a_cancelled_and_a_preempted_training_job_run_again_resume_and_match_a_local_run(
        cluster, tmp_path):
    # Issue 19: sacct reports a cancelled job as "CANCELLED by 0", which the plugin's list of
    # failed states misses, so the run waited for it forever. The profile asks squeue, which
    # says CANCELLED: the job fails, is resubmitted (retries) and resumes from its saved state.
    # A preempted job is requeued by SLURM (the profile's slurm-requeue) and resumes likewise.
    cfg = _interrupted_config()
    local, local_run = _start_local(tmp_path, cfg)
    try:
        work, cmd = _slurm_command(tmp_path, cfg)
        run = subprocess.Popen(cmd, env=cluster.env, cwd=work, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        try:
            pretrain = {"pretrain": "results/.resume/pretrain/ptbxl/gru/seed0"}
            cancelled = _wait_for("a pretraining job that has saved an epoch",
                                  lambda: _running(cluster, work, pretrain), run)
            cluster.run("scancel", *cancelled)
            downstream = {"finetune": "results/.resume/finetune/ptbxl/ptb/gru/seed0",
                          "train_scratch": "results/.resume/train_scratch/ptb/gru/seed0"}
            preempted = _wait_for("a downstream job that has saved an epoch",
                                  lambda: _running(cluster, work, downstream), run)
            # Both GPUs for a job of the higher-tier partition: SLURM requeues what holds one.
            cluster.run("sbatch", "-p", "urgent", "--gres=gpu:2", "-n", "1", "--mem=100",
                        "-o", "/dev/null", "--wrap", "sleep 2")
            output, _ = run.communicate(timeout=480)
        finally:
            if run.poll() is None:
                run.kill()
                run.communicate()
        _check_finished(cluster, run.returncode, output)
    finally:
        _local_finished(local_run)

    (cancelled_id,) = cancelled
    assert _states(cluster, cancelled_id)[-1].startswith("CANCELLED"), \
        _states(cluster, cancelled_id)
    resubmitted = [j for j in re.findall(r"SLURM jobid (\d+)", output)
                   if int(j) > int(cancelled_id)]
    assert resubmitted, output
    log = (work / "logs" / "pretrain" / "ptbxl" / "gru" / "seed0.log").read_text()
    assert re.search(r"resuming after epoch \d+ of 40", log), log
    for job_id, rule in preempted.items():
        states = _states(cluster, job_id)
        assert states[-1] == "COMPLETED" and len(states) > 1, (rule, states)
        wildcards = Path(downstream[rule]).relative_to(f"results/.resume/{rule}")
        log = (work / "logs" / rule / wildcards).with_suffix(".log").read_text()
        assert re.search(r"resuming after epoch \d+ of 40", log), (rule, log)
    _same_numbers(local, work)
