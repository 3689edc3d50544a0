#!/usr/bin/env bash
# Run Python's reference benchmark (python_baseline.py) and multiproc's (multiproc-bench) with
# the same arguments, one after the other, then print a comparison table. When gcc and
# limits.c are available, the C floor (plain syscalls, same machine) is shown as well.
#
#   bench/compare.sh [--cases a,b,...] [--scale F]
#
# Environment:
#   PYTHON_BASELINE  path of the Python benchmark (default: ../shared/bench/python_baseline.py,
#                    relative to the repository, when it exists; otherwise this repository's
#                    bench/python_reference.py, which measures the main cases)
#   LIMITS_C         path of limits.c (default: next to python_baseline.py); LIMITS_C= skips it
#   PYTHON           Python interpreter for the baseline (default: python3)
#   COMPARE_OUT      directory for the raw JSON lines (default: a new temporary directory)
#   ROUNDS           run both benchmarks this many times, alternating (default 1); the table
#                    then shows the median over rounds and the per-round ratios, since one
#                    run on a noisy VM can be far off
#   HOG              start this many CPU hogs (busy loops at the same priority) for the whole
#                    run, Python's, multiproc's and the C floor's alike (default 0): how each
#                    side's waiting holds up on a busy machine
#
# "better" is how many times better multiproc is than Python: python/multiproc for times
# (us, ms, ns, s: lower is better), multiproc/python for rates (MB/s, GB/s, msg/s, x: higher
# is better). Rows "  [same_cpu]" / "  [cross_cpu]" compare the pinned measurements that the
# two-party latency cases report next to their (bimodal, unpinned) value.
#
# multiproc-only cases (no Python case of that name, EXTRA_CASES in multiproc-bench) are
# compared with a Python case in a row "  [vs python <case>]"; asking for one in --cases runs
# that Python case instead.
#
#   bench/compare.sh --mpi [RANKS]
#
# runs the MPI cases instead: benches/mpi-bench.rs (feature `mpi`) and
# bench/mpi4py_baseline.py (mpi4py.futures), each under `mpirun -n RANKS` (default 3: rank 0
# and two workers), and prints them side by side with the local pool's cost per task.
# MPI_BENCH_SCALE scales mpi4py's workloads (default 0.25: it is ~40x slower per task).
set -euo pipefail

if [[ ${1-} == --mpi ]]; then
    repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    ranks="${2:-3}"
    python="${PYTHON:-python3}"
    out="${COMPARE_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/multiproc-mpi-compare.XXXXXX")}"
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    export MPI_BENCH_SCALE="${MPI_BENCH_SCALE:-0.25}"
    mpirun=(mpirun -n "$ranks" --oversubscribe --mca pml ob1 -x MPI_BENCH_SCALE)
    exe="$(cd "$repo" && cargo bench --no-run --quiet --features mpi --bench mpi-bench \
        --message-format=json-render-diagnostics | "$python" -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "mpi-bench":
        print(m["executable"])')"
    echo "== mpi4py: ${mpirun[*]} $python -m mpi4py.futures bench/mpi4py_baseline.py" >&2
    (cd "$repo" && "${mpirun[@]}" "$python" -m mpi4py.futures bench/mpi4py_baseline.py) \
        >"$out/mpi4py.jsonl"
    echo "== multiproc: ${mpirun[*]} $exe" >&2
    (cd "$repo" && "${mpirun[@]}" "$exe") >"$out/multiproc.jsonl"
    "$python" - "$out" <<'EOF'
import json, sys
def load(name):
    return {r["case"]: r for r in map(json.loads, open(f"{sys.argv[1]}/{name}.jsonl")) if "case" in r}
py, rs = load("mpi4py"), load("multiproc")
print(f"{'case':28} {'mpi4py':>12} {'multiproc':>12} {'better':>8} {'local pool':>12} {'mpi/local':>9}")
for case, r in rs.items():
    if not case.startswith("mpi_"):
        continue
    p = py.get(case)
    local = rs.get("local_" + case[4:])
    if p is None:
        better = "-"
    elif r["unit"] == "x":
        better = f"{r['value'] / p['value']:.1f}x"
    else:
        better = f"{p['value'] / r['value']:.1f}x"
    cell = lambda x: f"{x['value']:.4g} {x['unit']}" if x else "-"
    ratio = f"{r['value'] / local['value']:.2f}x" if local else "-"
    print(f"{case:28} {cell(p):>12} {cell(r):>12} {better:>8} {cell(local):>12} {ratio:>9}")
print(f"raw results: {sys.argv[1]}/{{mpi4py,multiproc}}.jsonl")
EOF
    exit 0
fi

# multiproc-only case=the Python case it is compared with (keep in sync with EXTRA_CASES in
# benches/multiproc-bench/).
extra_cases="queue_throughput_1mb=pipe_throughput_1mb rayon_map_noop=pool_map_noop
rayon_cpu_bound_speedup=cpu_bound_speedup log_records_from_children=queue_throughput_small
pool_map_noop_logging_on=pool_map_noop pool_task_panic_report=pool_apply_async_latency
async_pipe_roundtrip=pipe_rtt_small async_queue_throughput=queue_throughput_small"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared_baseline="$repo/../shared/bench/python_baseline.py"
if [[ -z "${PYTHON_BASELINE:-}" && ! -f "$shared_baseline" ]]; then
    PYTHON_BASELINE="$repo/bench/python_reference.py"
fi
baseline="${PYTHON_BASELINE:-$shared_baseline}"
limits_c="${LIMITS_C-$(dirname "$baseline")/limits.c}"
python="${PYTHON:-python3}"
out="${COMPARE_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/multiproc-compare.XXXXXX")}"
mkdir -p "$out"

if [[ ! -f "$baseline" ]]; then
    echo "compare.sh: the Python benchmark was not found at $baseline (set PYTHON_BASELINE)" >&2
    exit 2
fi

# Python's arguments: the same, with multiproc-only cases in --cases replaced by their Python
# counterparts (python_baseline.py rejects names it does not know).
python_cases() {
    local c e out=""
    local -a list=()
    IFS=, read -ra list <<<"$1"
    for c in ${list[@]+"${list[@]}"}; do
        for e in $extra_cases; do
            [[ $c == "${e%%=*}" ]] && c="${e#*=}"
        done
        [[ ",$out," == *",$c,"* ]] || out="${out:+$out,}$c"
    done
    printf '%s' "$out"
}
py_args=()
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    a="${args[i]}"
    if [[ $a == --cases=* ]]; then
        a="--cases=$(python_cases "${a#--cases=}")"
    elif [[ $a == --cases && $((i + 1)) -lt ${#args[@]} ]]; then
        py_args+=("$a")
        i=$((i + 1))
        a="$(python_cases "${args[i]}")"
    fi
    py_args+=("$a")
done

# Build first, so compilation does not overlap any measurement. multiproc-bench is a bench
# target (harness = false); run its executable directly, so the arguments reach it unchanged
# (`cargo bench` would append --bench) and no cargo process sits between it and the run.
bench_exe="$(cd "$repo" && cargo bench --no-run --quiet --bench multiproc-bench \
    --message-format=json-render-diagnostics | "$python" -c '
import json, sys
exe = ""
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "multiproc-bench":
        exe = m.get("executable") or exe
print(exe)
')"
if [[ -z "$bench_exe" || ! -x "$bench_exe" ]]; then
    echo "compare.sh: could not build or find the multiproc-bench executable" >&2
    exit 2
fi

hogs=()
stop_hogs() { [[ ${#hogs[@]} -eq 0 ]] || kill "${hogs[@]}" 2>/dev/null || true; }
trap stop_hogs EXIT
for ((h = 0; h < ${HOG:-0}; h++)); do
    "$python" -c 'while True: pass' &
    hogs+=("$!")
done
[[ ${HOG:-0} -eq 0 ]] || echo "== ${HOG} CPU hog(s) running: pids ${hogs[*]}" >&2

rounds="${ROUNDS:-1}"
py_rc=0
rs_rc=0
for ((r = 1; r <= rounds; r++)); do
    echo "== round $r/$rounds: python: $python $baseline ${py_args[*]-}" >&2
    "$python" "$baseline" ${py_args[@]+"${py_args[@]}"} >"$out/python.$r.jsonl" || py_rc=$?
    echo "== round $r/$rounds: multiproc: multiproc-bench $*" >&2
    (cd "$repo" && "$bench_exe" "$@") >"$out/multiproc.$r.jsonl" || rs_rc=$?
done

: >"$out/limits.jsonl"
if [[ -n "$limits_c" && -f "$limits_c" ]] && command -v gcc >/dev/null 2>&1; then
    echo "== C floor: $limits_c" >&2
    if gcc -O2 -o "$out/limits" "$limits_c" 2>"$out/limits.gcc.log"; then
        "$out/limits" >"$out/limits.jsonl" || echo "compare.sh: limits exited with $?" >&2
    else
        echo "compare.sh: could not compile $limits_c (see $out/limits.gcc.log)" >&2
    fi
else
    echo "== C floor: skipped (no gcc or no limits.c)" >&2
fi

"$python" - "$out" "$rounds" "$extra_cases" <<'EOF'
import json
import os
import statistics
import sys

out, rounds = sys.argv[1], int(sys.argv[2])
EXTRA = dict(e.split("=", 1) for e in sys.argv[3].split())
LOWER_BETTER = {"us", "ms", "ns", "s"}
HIGHER_BETTER = {"MB/s", "GB/s", "msg/s", "x"}


def load(name):
    recs = {}
    try:
        with open(os.path.join(out, name)) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    recs[rec.get("case")] = rec
    except OSError:
        pass
    return recs


py_runs = [load(f"python.{r}.jsonl") for r in range(1, rounds + 1)]
rs_runs = [load(f"multiproc.{r}.jsonl") for r in range(1, rounds + 1)]
c = load("limits.jsonl")


def fmt(v, unit):
    return "" if v is None else f"{v:.4g} {unit}"


def better(p, r, unit):
    """How many times better multiproc (r) is than Python (p)."""
    if p is None or r is None or p <= 0 or r <= 0:
        return None
    if unit in LOWER_BETTER:
        return p / r
    if unit in HIGHER_BETTER:
        return r / p
    return None


def fx(x):
    return "" if x is None else f"{x:.2f}x"


def median_or_none(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summary(runs, case, key=None):
    """(median value over rounds, unit, error text, per-round values, max steal)."""
    recs = [run.get(case) for run in runs]
    recs = [r for r in recs if r is not None]
    if not recs:
        return None, "", None, [], None
    unit = next((r.get("unit") for r in recs if r.get("value") is not None), recs[0].get("unit", ""))
    if key is None:
        vals = [r.get("value") for r in recs]
    else:
        vals = [r.get("params", {}).get(key) for r in recs]
    err = None
    if all(v is None for v in vals) and key is None:
        err = str(recs[0].get("params", {}).get("error", "error"))
    steals = [r.get("params", {}).get("cpu_steal_pct") for r in recs]
    steals = [s for s in steals if s is not None]
    return median_or_none(vals), unit, err, vals, (max(steals) if steals else None)


def cell(v, unit, err):
    if err is not None:
        return "n/a (" + (err[:28] + "..." if len(err) > 31 else err) + ")"
    return fmt(v, unit) or "-"


rows = []
cases = []
for run in py_runs + rs_runs:
    for k in run:
        if k != "machine" and k not in cases:
            cases.append(k)
for case in cases:
    pv, pu, perr, pvals, psteal = summary(py_runs, case)
    rv, ru, rerr, rvals, rsteal = summary(rs_runs, case)
    unit = pu or ru
    if pv is not None and rv is not None and pu != ru:
        ratio, per_round = "unit mismatch", ""
    else:
        ratio = fx(better(pv, rv, unit))
        per = [fx(better(a, b, unit)) for a, b in zip(pvals, rvals)]
        per_round = "/".join(x or "-" for x in per) if any(per) else ""
    steal = max((s for s in (psteal, rsteal) if s is not None), default=None)
    floor = c.get(case)
    rows.append((case, cell(pv, pu, perr), cell(rv, ru, rerr), ratio, per_round,
                 fmt(floor.get("value"), floor.get("unit", "")) if floor else "",
                 "" if steal is None else f"{steal:g}"))
    ref = EXTRA.get(case)
    if ref is not None and all(case not in run for run in py_runs):
        pv, pu, perr, pvals, _ = summary(py_runs, ref)
        per = [fx(better(a, b, unit)) for a, b in zip(pvals, rvals)]
        rows.append((f"  [vs python {ref}]", cell(pv, pu, perr), cell(rv, ru, rerr),
                     "unit mismatch" if pv is not None and rv is not None and pu != ru
                     else fx(better(pv, rv, unit)),
                     "/".join(x or "-" for x in per) if any(per) else "", "", ""))
    for label in ("same_cpu", "cross_cpu"):
        for u in ("us", "ns", "ms"):
            key = f"{label}_{u}"
            pp, _, _, ppv, _ = summary(py_runs, case, key)
            rp, _, _, rpv, _ = summary(rs_runs, case, key)
            if pp is not None or rp is not None:
                per = "/".join(fx(better(a, b, u)) or "-" for a, b in zip(ppv, rpv))
                rows.append((f"  [{label}]", fmt(pp, u) or "-", fmt(rp, u) or "-",
                             fx(better(pp, rp, u)), per, "", ""))

head = ["case", "python", "multiproc", "better", "per round", "C floor", "steal%"]
if rounds == 1:
    head.pop(4)
    rows = [r[:4] + r[5:] for r in rows]
widths = [max(len(str(x[i])) for x in rows + [head]) for i in range(len(head))]


def show(r):
    print("  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w)
                    for i, (v, w) in enumerate(zip(r, widths))).rstrip())


pm = next((r["machine"]["params"] for r in py_runs if "machine" in r), {})
rm = next((r["machine"]["params"] for r in rs_runs if "machine" in r), {})
print(f"machine: {rm.get('cpu_model') or pm.get('cpu_model', '?')}, {rm.get('nproc') or pm.get('nproc', '?')} CPUs, "
      f"{rm.get('platform') or pm.get('platform', '?')}")
print(f"python {pm.get('python_version', '?')} (default start method {pm.get('default_start_method', '?')}); "
      f"multiproc {rm.get('multiproc_version', '?')} {rm.get('profile', '')}, {rm.get('rustc', '')}")
if rounds > 1:
    print(f"{rounds} rounds (python and multiproc alternating); values are medians over rounds")
print()
show(head)
print("  ".join("-" * w for w in widths))
for r in rows:
    show(r)
print()
print("better = how many times better multiproc is (python/multiproc for times, multiproc/python for rates)")
print("steal% = highest share of CPU time stolen by the hypervisor during the case (noise indicator)")
print(f"raw results: {out}/{{python,multiproc}}.<round>.jsonl, {out}/limits.jsonl")
EOF

if [[ $py_rc -ne 0 || $rs_rc -ne 0 ]]; then
    echo "compare.sh: python exited with $py_rc, multiproc-bench with $rs_rc" >&2
    exit 1
fi
