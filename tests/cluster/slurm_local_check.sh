#!/usr/bin/env bash
# A real SLURM cluster on this one machine, then the workflow through it.
#
#   sudo tests/cluster/slurm_local_check.sh            (root: it may install packages and
#                                                       starts munged, slurmctld and slurmd)
#
# 1. Installs Debian's slurm-wlm and munge if sbatch or munged is missing.
# 2. Writes a one-node slurm.conf (this host, its CPUs and memory from `slurmd -C`, one
#    partition, no accounting database) and a munge key under $WORK (default /tmp/lmt-slurm),
#    and links /etc/slurm/slurm.conf to it for the duration of the check: the Snakemake SLURM
#    plugin clears SLURM_* variables (SLURM_CONF too), so `srun` inside a job only finds the
#    default path. It refuses to run where /etc/slurm/slurm.conf already exists (a real cluster).
# 3. Starts munged, slurmctld and slurmd with their own socket, pid files and logs there, and
#    stops exactly those processes when it exits (also on failure or Ctrl-C).
# 4. Runs tests/cluster/test_slurm_cluster.py, which sends the tiny test experiment
#    (.test/config/config.yaml) through `snakemake --workflow-profile workflow/profiles/slurm-cpu`
#    so that every job goes through sbatch, checks in the controller's log that each one was
#    allocated and finished, and compares the tables with a local run of the same config.
#
# Environment: PYTHON (default .venv/bin/python), WORK (default /tmp/lmt-slurm).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-.venv/bin/python}
WORK=${WORK:-/tmp/lmt-slurm}

if ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    echo "installing slurm-wlm and munge (Debian packages)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
fi
"$PYTHON" -c "import snakemake_executor_plugin_slurm" 2>/dev/null || {
    echo "the SLURM executor plugin is missing: pip install -e '.[slurm]'" >&2; exit 1; }

SYSTEM_CONF=/etc/slurm/slurm.conf
if [ -L "$SYSTEM_CONF" ] && [ "$(readlink "$SYSTEM_CONF")" = "$WORK/slurm.conf" ]; then
    echo "removing $SYSTEM_CONF left by an interrupted check"; rm -f "$SYSTEM_CONF"
fi
if [ -e "$SYSTEM_CONF" ] || [ -L "$SYSTEM_CONF" ]; then
    echo "$SYSTEM_CONF exists: this machine has a SLURM configuration; not touching it" >&2; exit 1
fi
rm -rf "$WORK" && mkdir -p "$WORK"/{state,spool,munge}
chmod 700 "$WORK/munge"
stop() {
    local pids=()
    for pidfile in "$WORK"/slurmd.pid "$WORK"/slurmctld.pid "$WORK"/munged.pid; do
        [ -f "$pidfile" ] && pids+=("$(cat "$pidfile")")
    done
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do  # wait for exactly these processes to end
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    done
    [ -L "$SYSTEM_CONF" ] && rm -f "$SYSTEM_CONF"
    echo "stopped munged, slurmctld and slurmd (${pids[*]})"
}
trap stop EXIT

# munge: a fresh key and a socket of our own, so a system munged (if any) is left alone.
dd if=/dev/urandom of="$WORK/munge/munge.key" bs=1 count=1024 status=none
chmod 400 "$WORK/munge/munge.key"
munged --force --key-file="$WORK/munge/munge.key" --socket="$WORK/munge/munge.socket" \
    --pid-file="$WORK/munged.pid" --log-file="$WORK/munged.log" --seed-file="$WORK/munge/seed"

NODE=$(hostname -s)
read -r CPUS MEMORY < <(slurmd -C | awk '/NodeName/ {for (i = 1; i <= NF; i++) {split($i, kv, "=");
    if (kv[1] == "CPUs") c = kv[2]; if (kv[1] == "RealMemory") m = kv[2]}} END {print c, m - 1024}')
cat > "$WORK/slurm.conf" <<EOF
ClusterName=lmtcheck
SlurmctldHost=$NODE(127.0.0.1)
AuthType=auth/munge
AuthInfo=socket=$WORK/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
SlurmctldDebug=info
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=3600
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEMORY State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
mkdir -p "$(dirname "$SYSTEM_CONF")" && ln -s "$WORK/slurm.conf" "$SYSTEM_CONF"
export SLURM_CONF="$WORK/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
    sinfo -h -o %t 2>/dev/null | grep -qx idle && break
    sleep 1
done
sinfo
echo "SLURM $(sinfo --version) on $NODE: $CPUS CPUs, $MEMORY MB"

LMT_SLURM_CHECK=1 SLURM_CONTROLLER_LOG="$WORK/slurmctld.log" \
    "$PYTHON" -m pytest tests/cluster/test_slurm_cluster.py -m slurm -v -s -p no:cacheprovider "$@"
