#!/usr/bin/env bash
# The MPI tests (feature `mpi`): tests/mpi.rs under mpirun with 3 and 4 ranks, a rank that
# dies, a build mismatch, MPI_Comm_spawn, and one job across 3 "hosts" made of network
# namespaces. Needs Open MPI (`apt-get install openmpi-bin libopenmpi-dev libclang-dev`);
# the namespace test needs root and `ip`, and is skipped otherwise.
#
# Usage: tests/mpi/run.sh   (from the repository root; CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "$0")/../.."

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# ob1 starts in ~0.1 s instead of ~0.3 s; more ranks than cores need --oversubscribe.
MPIRUN=(mpirun --oversubscribe --mca pml ob1)

cargo build --features mpi --test mpi --example mpi_pool --message-format=json >/tmp/mpi-build.$$ 
BIN=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "mpi" and m["executable"]:
        print(m["executable"])' /tmp/mpi-build.$$)
rm -f /tmp/mpi-build.$$
WORK=$(mktemp -d /tmp/multiproc-mpi.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# Runs "$@" with its output in a file (an MPI daemon may keep a pipe open after the job);
# fails unless every line in EXPECT appears in it.
run() {
    local name=$1; shift
    local out="$WORK/$name.log"
    local rc=0
    timeout 120 "$@" >"$out" 2>&1 || rc=$?
    for want in "${EXPECT[@]}"; do
        if ! grep -q -- "$want" "$out"; then
            echo "mpi: $name: missing '$want' (exit $rc)"; cat "$out"; exit 1
        fi
    done
    if [ "${WANT_RC:-0}" != any ] && [ "$rc" != "${WANT_RC:-0}" ]; then
        echo "mpi: $name: exit code $rc, expected ${WANT_RC:-0}"; cat "$out"; exit 1
    fi
    echo "mpi: $name ok ($(grep -c ' ... ok' "$out") cases)"
}

EXPECT=("task_timeout_gives_the_rank_up_and_the_others_go_on ... ok")
MPI_TEST_WORKERS=2 run ranks3 "${MPIRUN[@]}" -n 3 -x MPI_TEST_WORKERS "$BIN"
MPI_TEST_WORKERS=3 run ranks4 "${MPIRUN[@]}" -n 4 -x MPI_TEST_WORKERS "$BIN"

# A rank that exits in a task: by default Open MPI ends the job; without that, the task
# fails with its timeout, the others go on, and the job ends with MPI_Abort at exit (the
# lost rank cannot be told to finalize).
EXPECT=("dead-rank ... ok" "ending the job with MPI_Abort")
WANT_RC=any run dead-rank "${MPIRUN[@]}" -n 3 --mca orte_abort_on_non_zero_status 0 "$BIN" dead-rank
EXPECT=("exited with non-zero status\|non-zero exit code\|exiting improperly")
WANT_RC=any run dead-rank-default "${MPIRUN[@]}" -n 3 "$BIN" dead-rank

# Another build on rank 1: the same binary with its build-id changed.
python3 - "$BIN" "$WORK/other-build" <<'PY'
import re, subprocess, sys
notes = subprocess.run(["readelf", "-n", sys.argv[1]], capture_output=True, text=True).stdout
build_id = bytes.fromhex(re.search(r"Build ID: ([0-9a-f]+)", notes).group(1))
data = open(sys.argv[1], "rb").read()
assert data.count(build_id) == 1
changed = bytes([build_id[0] ^ 0xff]) + build_id[1:]
open(sys.argv[2], "wb").write(data.replace(build_id, changed))
PY
chmod +x "$WORK/other-build"
EXPECT=("build-mismatch ... ok" "runs another build")
run build-mismatch "${MPIRUN[@]}" -n 1 "$BIN" build-mismatch : -n 1 "$WORK/other-build" build-mismatch

# No launcher: the program spawns its workers.
EXPECT=("spawn ... ok")
OMPI_MCA_rmaps_base_oversubscribe=1 run spawn "$BIN" spawn

tests/mpi/netns.sh "$BIN" "$WORK"
