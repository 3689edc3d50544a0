#!/usr/bin/env bash
# One MPI job across 3 "hosts" on this machine: network namespaces mpt-h1..3 joined by a
# bridge in a fourth namespace (mpt-sw), addresses 10.213.77.1-3 that exist only inside
# them. Each host gets its own host name (unshare --uts) and TMPDIR (else the PMIx
# session directories of the "hosts" collide); `mpirun` reaches them through an rsh agent
# that runs the command with `ip netns exec`, and itself runs inside mpt-h1.
#
# Usage: tests/mpi/netns.sh <tests/mpi.rs binary> <scratch dir>; skipped unless root with `ip`.
set -euo pipefail
BIN=$1
WORK=$2
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! command -v unshare >/dev/null; then
    echo "mpi: three-hosts skipped (needs root, ip and unshare)"
    exit 0
fi
NET=10.213.77
HOSTS=(mpt-h1 mpt-h2 mpt-h3)
cleanup() {
    for ns in "${HOSTS[@]}" mpt-sw; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT
cleanup
ip netns add mpt-sw
ip -n mpt-sw link add br0 type bridge
ip -n mpt-sw link set br0 up
for i in 1 2 3; do
    ns=mpt-h$i
    ip netns add "$ns"
    ip -n mpt-sw link add "h$i" type veth peer name eth0 netns "$ns"
    ip -n mpt-sw link set "h$i" master br0 up
    ip -n "$ns" addr add "$NET.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    echo "$NET.$i slots=1" >>"$WORK/hosts"
done

# The rsh agent: `agent HOST COMMAND...` runs COMMAND (a shell command line) on HOST.
cat >"$WORK/rsh" <<AGENT
#!/bin/sh
host=\$1; shift
ns=mpt-h\${host##*.}
exec ip netns exec "\$ns" unshare --uts sh -c 'hostname "\$0"; export TMPDIR=$WORK/tmp-\$0; mkdir -p "\$TMPDIR"; eval "exec \$*"' "\$ns" "\$@"
AGENT
chmod +x "$WORK/rsh"

out="$WORK/three-hosts.log"
rc=0
timeout 120 ip netns exec mpt-h1 unshare --uts sh -c '
    hostname mpt-h1; export TMPDIR="$0/tmp-mpt-h1"; mkdir -p "$TMPDIR"
    exec "$@"' "$WORK" \
    mpirun -n 3 --hostfile "$WORK/hosts" --mca plm_rsh_agent "$WORK/rsh" --mca pml ob1 \
    --mca btl self,tcp --mca btl_tcp_if_include "$NET.0/24" --mca oob_tcp_if_include "$NET.0/24" \
    --mca mpi_yield_when_idle 1 -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM \
    "$BIN" three-hosts map_returns_results_in_order executor_submit_as_completed_and_wait \
    >"$out" 2>&1 || rc=$?
for want in "three-hosts ... ok" "map_returns_results_in_order ... ok" "executor_submit_as_completed_and_wait ... ok"; do
    if [ "$rc" != 0 ] || ! grep -q "$want" "$out"; then
        echo "mpi: three-hosts failed (exit $rc, missing '$want')"; cat "$out"; exit 1
    fi
done
echo "mpi: three-hosts ok"
