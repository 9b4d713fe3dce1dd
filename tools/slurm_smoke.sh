#!/usr/bin/env bash
# A one-node Slurm cluster on this machine (Debian's slurm-wlm and munge), and a sweep through it the
# way a lab runs one: packaging/slurm/sweep.sbatch as a 4-task CPU array over the tiny sweep
# tests/data/sweep/tiny-cpu.json, then report.sbatch depending on it. Checks that every task ran its
# shard and that the report gathered all 4 jobs. Needs root (it starts slurmctld, slurmd and munged);
# takes about a minute.   bash tools/slurm_smoke.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
build=${1:-build}
cli=$(readlink -f "$build/app/statescope-cli")
[ -x "$cli" ] || { echo "no $build/app/statescope-cli: build first"; exit 1; }
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
for p in slurm-wlm munge; do
  dpkg -s "$p" >/dev/null 2>&1 || $SUDO apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
done

dir=$(mktemp -d /tmp/statescope-slurm.XXXXXX)
chmod 755 "$dir"
mkdir -p "$dir/state" "$dir/spool" "$dir/munge" "$dir/work"
host=$(hostname -s)
cleanup() {
  [ -f "$dir/slurmd.pid" ] && kill "$(cat "$dir/slurmd.pid")" 2>/dev/null || true
  [ -f "$dir/slurmctld.pid" ] && kill "$(cat "$dir/slurmctld.pid")" 2>/dev/null || true
  [ -f "$dir/munge/munged.pid" ] && kill "$(cat "$dir/munge/munged.pid")" 2>/dev/null || true
}
trap cleanup EXIT

# munge: a key of our own, its socket in our folder.
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$dir/munge/munge.key"
sock="$dir/munge/munge.socket"
munged --force --key-file="$dir/munge/munge.key" --socket="$sock" --pid-file="$dir/munge/munged.pid" \
  --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munge.seed"

node=$(slurmd -C | head -1 | sed -E 's/ UpTime=.*//')
cat > "$dir/slurm.conf" <<EOF
ClusterName=statescope-smoke
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=26817
SlurmdPort=26818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
$node State=UNKNOWN
PartitionName=smoke Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
export SLURM_CONF=$dir/slurm.conf
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 50); do sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mixed' && break; sleep 0.2; done
sinfo

# The tiny sweep with absolute paths, its folder in ours.
python3 - "$repo/tests/data/sweep/tiny-cpu.json" "$dir/work/spec.json" <<'PY'
import json, os, sys
spec = json.load(open(sys.argv[1]))
base = os.path.dirname(os.path.abspath(sys.argv[1]))
spec["data"] = os.path.join(base, spec["data"])
spec["held_out"] = {k: os.path.join(base, v) for k, v in spec["held_out"].items()}
json.dump(spec, open(sys.argv[2], "w"))
PY
spec=$dir/work/spec.json
start=$(date +%s)
cd "$dir/work"
array=$(sbatch --parsable --array=0-3 --gres=none --cpus-per-task=1 --mem=1G \
  --export=ALL,SPEC="$spec",SHARDS=4,DEVICE=cpu,STATESCOPE_CLI="$cli" "$repo/packaging/slurm/sweep.sbatch")
report=$(sbatch --parsable --dependency=afterany:"$array" --mem=1G \
  --export=ALL,SPEC="$spec",STATESCOPE_CLI="$cli" "$repo/packaging/slurm/report.sbatch")
echo "submitted array $array (4 tasks) and report $report"
for _ in $(seq 600); do
  [ -z "$(squeue -h -j "$array,$report" 2>/dev/null)" ] && break
  sleep 0.5
done
squeue
echo "== task logs"
for t in 0 1 2 3; do
  f=statescope-sweep-${array}_$t.log
  echo "-- $f"; cat "$f"
  grep -q "shard $t/4: 1 jobs run" "$f" || { echo "FAIL: task $t did not run its job"; exit 1; }
done
echo "== report"
cat "statescope-sweep-report-$report.log"
grep -q "^4 of 4 jobs finished" "statescope-sweep-report-$report.log" || { echo "FAIL: report"; exit 1; }
[ -s "$dir/work/tiny-cpu/summary.h5" ] || { echo "FAIL: summary.h5"; exit 1; }
echo "slurm smoke: PASS in $(( $(date +%s) - start )) s (array $array, report $report)"
