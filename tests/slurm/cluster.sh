#!/usr/bin/env bash
# A single-node SLURM cluster with accounting on localhost, for tests/test_slurm.py.
#
#   cluster.sh start STATE_DIR   start munged, MariaDB, slurmdbd, slurmctld, slurmd; print the
#                                SLURM_CONF to export; exit non-zero (with the logs) on failure
#   cluster.sh stop STATE_DIR    stop every daemon started there (by its pid file), newest first
#   cluster.sh logs STATE_DIR    print the tail of every daemon's log (for a failing test)
#
# Needs root and Debian's packages: munge slurm-wlm slurmctld slurmd slurm-client slurmdbd
# mariadb-server. No systemd: every daemon is started by hand with its files (config, pid files,
# logs, database, spool) under STATE_DIR, which must be traversable by the munge and mysql users
# (not under a 0700 directory such as pytest's tmp_path). Outside it: munged's default socket
# (/run/munge; a running munged is reused) and a link /etc/slurm/slurm.conf -> STATE_DIR's
# config while the cluster runs (only where no such file exists). Ports come from
# SLURMCTLD_PORT, SLURMD_PORT, SLURMDBD_PORT, MYSQL_PORT (defaults 16817-16820).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
action=${1:?usage: cluster.sh start|stop STATE_DIR}
S=$(realpath -m "${2:?usage: cluster.sh start|stop STATE_DIR}")
export SLURM_CONF="$S/etc/slurm.conf"
SYSTEM_CONF=/etc/slurm/slurm.conf
: "${SLURMCTLD_PORT:=16817}" "${SLURMD_PORT:=16818}" "${SLURMDBD_PORT:=16819}" "${MYSQL_PORT:=16820}"

say() { echo "cluster.sh: $*" >&2; }

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND until it succeeds.
wait_for() {
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    while [ $SECONDS -lt $deadline ]; do
        if timeout 10 "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    say "$what did not come up in time"
    return 1
}

dump_logs() {
    for f in "$S"/log/* "$S"/mysql/*.err "$S"/munge/*.log; do
        [ -f "$f" ] || continue
        echo "===== $f (last 40 lines) =====" >&2
        tail -n 40 "$f" >&2
    done
}

fill() {  # fill TEMPLATE OUTPUT: replace the @NAMES@ of a template
    sed -e "s|@STATE@|$S|g" -e "s|@SLURMCTLD_PORT@|$SLURMCTLD_PORT|g" \
        -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" -e "s|@SLURMDBD_PORT@|$SLURMDBD_PORT|g" \
        -e "s|@MYSQL_PORT@|$MYSQL_PORT|g" -e "s|@DB_PASSWORD@|$DB_PASSWORD|g" \
        -e "s|@CPUS@|$CPUS|g" -e "s|@MEMORY_MB@|$MEMORY_MB|g" "$1" >"$2"
}

start() {
    for bin in munged mungekey mariadbd mariadb-install-db mariadb slurmdbd slurmctld slurmd \
        sacctmgr sbatch sacct scontrol sinfo; do
        command -v "$bin" >/dev/null || { say "$bin not found (apt-get install munge slurm-wlm slurmctld slurmd slurm-client slurmdbd mariadb-server)"; exit 1; }
    done
    [ "$(id -u)" = 0 ] || { say "must run as root (daemons, mknod)"; exit 1; }
    mkdir -p "$S"/{etc,run,log,ctld,spool,dev,mysql}
    install -d -o munge -g munge -m 755 "$S/munge"
    chmod 755 "$S" "$S/log"
    CPUS=$(nproc)
    # Leave the OS 1 GB; SLURM refuses a node that claims more memory than it has.
    MEMORY_MB=$(($(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 1024))
    DB_PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    fill "$HERE/slurm.conf.in" "$S/etc/slurm.conf"
    fill "$HERE/gres.conf.in" "$S/etc/gres.conf"
    fill "$HERE/slurmdbd.conf.in" "$S/etc/slurmdbd.conf"
    chmod 600 "$S/etc/slurmdbd.conf"
    # Inside a job, snakemake-executor-plugin-slurm-jobstep drops every SLURM_* variable
    # (SLURM_CONF included) before its srun, which then reads the default path. So the config
    # is also linked there, and only if that path is free: a real installation is never touched.
    # A dangling link (left by a test run that was killed) configures nothing: replace it.
    if [ -L "$SYSTEM_CONF" ] && [ ! -e "$SYSTEM_CONF" ]; then rm -f "$SYSTEM_CONF"; fi
    if [ -e "$SYSTEM_CONF" ] || [ -L "$SYSTEM_CONF" ]; then
        if [ "$(readlink "$SYSTEM_CONF" 2>/dev/null)" != "$S/etc/slurm.conf" ]; then
            say "$SYSTEM_CONF exists: this machine has its own SLURM configuration, which the" \
                "test cluster would shadow; run the test on a machine without one"
            return 1
        fi
    else
        mkdir -p "$(dirname "$SYSTEM_CONF")"
        ln -s "$S/etc/slurm.conf" "$SYSTEM_CONF"
    fi
    # Fake GPUs: character devices (1,3 is /dev/null); slurmd rejects regular files.
    for i in 0 1; do [ -c "$S/dev/gpu$i" ] || mknod "$S/dev/gpu$i" c 1 3; done

    # munged at its default socket: slurm 22.05's clients (sacctmgr) ignore AuthInfo=socket=.
    # One that already answers is used as it is and left running.
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        say "munged is already running: using it"
    else
        say "munged (user munge)"
        [ -f /etc/munge/munge.key ] || runuser -u munge -- mungekey --create
        install -d -o munge -g munge -m 755 /run/munge
        runuser -u munge -- munged --pid-file="$S/munge/munged.pid" \
            --log-file="$S/munge/munged.log" --seed-file="$S/munge/munged.seed" \
            </dev/null >>"$S/log/munged.out" 2>&1
        wait_for 10 munged sh -c 'munge -n </dev/null | unmunge'
    fi

    say "MariaDB on 127.0.0.1:$MYSQL_PORT"
    chown mysql:mysql "$S/mysql"
    mariadb-install-db --no-defaults --user=mysql --datadir="$S/mysql" --skip-test-db \
        --auth-root-authentication-method=socket >"$S/log/mariadb-install.log" 2>&1
    # Detached, with no pipe left open: a CI step would otherwise wait for it forever.
    setsid -f mariadbd --no-defaults --user=mysql --datadir="$S/mysql" \
        --socket="$S/mysql/mysql.sock" --port="$MYSQL_PORT" --bind-address=127.0.0.1 \
        --pid-file="$S/mysql/mariadbd.pid" --log-error="$S/mysql/mariadbd.err" \
        </dev/null >>"$S/log/mariadbd.out" 2>&1
    wait_for 60 MariaDB mariadb --no-defaults --socket="$S/mysql/mysql.sock" -e "SELECT 1"
    mariadb --no-defaults --socket="$S/mysql/mysql.sock" <<SQL
CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
CREATE USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL

    say "slurmdbd on port $SLURMDBD_PORT"
    slurmdbd </dev/null >>"$S/log/slurmdbd.out" 2>&1
    wait_for 60 slurmdbd sacctmgr -n list cluster
    # The cluster must exist in the database before slurmctld registers with it.
    sacctmgr -i add cluster ecgtest >>"$S/log/sacctmgr.out" 2>&1

    say "slurmctld on port $SLURMCTLD_PORT"
    slurmctld </dev/null >>"$S/log/slurmctld.out" 2>&1
    wait_for 30 slurmctld scontrol ping
    say "slurmd -N localhost ($CPUS CPUs, ${MEMORY_MB} MB, gpu:2)"
    # The node is named localhost, whatever this machine's hostname is.
    slurmd -N localhost </dev/null >>"$S/log/slurmd.out" 2>&1
    wait_for 30 "node localhost" sh -c 'sinfo -h -N -n localhost -o %t | grep -q "^idle"'
    echo "$SLURM_CONF"
}

stop_pidfile() {  # stop_pidfile NAME PIDFILE: TERM, wait up to 15 s, then KILL
    local name=$1 file=$2 pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 60); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.25
    done
    say "$name did not stop: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

stop() {
    if [ "$(readlink "$SYSTEM_CONF" 2>/dev/null)" = "$S/etc/slurm.conf" ]; then
        rm -f "$SYSTEM_CONF"
    fi
    stop_pidfile slurmd "$S/run/slurmd.pid"
    stop_pidfile slurmctld "$S/run/slurmctld.pid"
    stop_pidfile slurmdbd "$S/run/slurmdbd.pid"
    stop_pidfile mariadbd "$S/mysql/mariadbd.pid"
    stop_pidfile munged "$S/munge/munged.pid"
}

case "$action" in
start)
    # set -e stays in force inside start (it would not under `if ! start`); the logs on failure:
    trap 'status=$?; [ $status = 0 ] || dump_logs; exit $status' EXIT
    start
    ;;
stop) stop ;;
logs) dump_logs ;;
*)
    say "unknown action '$action' (start, stop or logs)"
    exit 2
    ;;
esac
