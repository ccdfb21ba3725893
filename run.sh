#!/usr/bin/env bash
# The project's entry point. Creates .venv with the pinned environment on first use, then:
#   bash run.sh demo            the whole study on the embedded demo data (results/)
#   bash run.sh test [--with-slurm]
#                               the test suite (what CI runs, via .ci/run, with --with-slurm:
#                               as root, apt-get installs what tests/test_slurm.py needs)
#   bash run.sh report ARGS     results/report.html, one page with every table and figure
#                               (ARGS: the run's config, e.g. --configfile config/demo.yaml)
#   bash run.sh snakemake ARGS  any snakemake command inside the environment
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

VENV=.venv
STAMP="$VENV/.installed"

find_python() {
    for candidate in "${PYTHON:-}" python3.11 python3; do
        if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(not (3, 11, 4) <= sys.version_info < (3, 12))'; then
            echo "$candidate"
            return
        fi
    done
    echo "run.sh: Python 3.11 is required, 3.11.4 or later (its tarfile has the extraction" \
        "filters the downloads rely on); set PYTHON=/path/to/python3.11" >&2
    exit 1
}

ensure_env() {
    local want
    want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
    if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
        return
    fi
    local python
    python=$(find_python)  # before anything is deleted: without Python 3.11, .venv stays
    echo "run.sh: installing the pinned environment into $VENV (first run only) ..." >&2
    rm -rf "$VENV"
    "$python" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -r requirements.lock
    "$VENV/bin/python" -m pip install --quiet --no-deps -e .
    echo "$want" >"$STAMP"
}

# tests/test_slurm.py starts a real single-node SLURM cluster from these Debian packages.
SLURM_PACKAGES=(munge slurm-wlm slurmctld slurmd slurm-client slurmdbd mariadb-server)

# Installed only when asked (bash run.sh test --with-slurm, as CI does): apt-get changes the
# machine, which a test command must not do unasked.
ensure_slurm_packages() {
    local install=$1 missing=() pkg
    for pkg in "${SLURM_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return
    if [ "$install" != yes ]; then
        echo "run.sh: tests/test_slurm.py needs the Debian packages ${missing[*]}; without them" \
            "it fails. 'bash run.sh test --with-slurm' installs them (as root, with apt-get)," \
            "or install them yourself" >&2
    elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "run.sh: installing for tests/test_slurm.py (apt-get): ${missing[*]}" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >&2
    else
        echo "run.sh: tests/test_slurm.py needs the Debian packages ${missing[*]}" \
            "(as root: apt-get install ${missing[*]}); without them it fails" >&2
    fi
}

command=${1:-help}
[ $# -gt 0 ] && shift
case "$command" in
demo)
    ensure_env
    # workflow/profiles/default applies by itself (Snakemake's workflow profile, profiles/default)
    "$VENV/bin/snakemake" --configfile config/demo.yaml "$@"
    "$VENV/bin/snakemake" --configfile config/demo.yaml --report results/report.html
    echo "run.sh: the demo study is in results/: claims.md (each claim with its verdict)," \
        "tables/, figures/, and report.html (everything on one page)" >&2
    ;;
report)
    ensure_env
    exec "$VENV/bin/snakemake" --report results/report.html "$@"
    ;;
test)
    with_slurm=no
    if [ "${1:-}" = --with-slurm ]; then
        with_slurm=yes
        shift
    fi
    ensure_env
    ensure_slurm_packages "$with_slurm"
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
snakemake)
    ensure_env
    exec "$VENV/bin/snakemake" "$@"
    ;;
*)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    [ "$command" = help ]
    ;;
esac
