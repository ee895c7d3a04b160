#!/usr/bin/env bash
# Checks the per-core model of reports/baseline/scaling.md on this machine: the proxy's
# CPU per request at saturation predicts its rate on the cores it gets. Unary Get of a
# 128-byte value from memstore, h2load -c 4 -m 64, `fast` profile, ROUNDS rounds of:
#   current-thread   one proxy pinned to cpu0, h2load pinned to cpu1 (one core each);
#   1-worker         --runtime multi-thread --worker-threads 1, pinned the same way;
#   2-workers        --worker-threads 2 and h2load -t 2, nothing pinned (2 cores shared);
#   2-processes      two current-thread proxies on two ports, an h2load on each, nothing
#                    pinned: scale-out, the clients doing the balancing;
#   2-reuse-port     two current-thread proxies sharing one port (--reuse-port), one
#                    h2load -t 2 -c 8: the kernel balancing connections.
# Each line: rate, CPU microseconds per request of the proxies and of h2load (from /proc
# and getrusage). The summary predicts each configuration's rate from the current-thread
# costs (cores / CPU per request of everything on them) and sets it beside the measured one.
# Writes reports/baseline/scaling-latest.txt.
# Usage: bash ci/bench-scaling.sh [ROUNDS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prism-target}"
ROUNDS="${1:-3}"
N=400000
. ci/bench-measure.sh
need_h2load
cargo build --profile fast --locked -p prism-proxy --bin prism-proxy --example bench_get
BIN="$CARGO_TARGET_DIR/fast"
OUT="reports/baseline/scaling-latest.txt"
h2_work

# run LABEL PROCESSES PORTS PROXY_CPUS LOAD_CPUS LOAD_THREADS PROXY_ARGS...
# PROCESSES proxies on PORTS consecutive ports (1: all on one, with --reuse-port), one
# h2load per port with 4 connections per proxy behind it, N requests in all.
run() {
  local label=$1 processes=$2 ports=$3 proxy_cpus=$4 load_cpus=$5 threads=$6; shift 6
  PIDS=()
  for i in $(seq 0 $((processes - 1))); do
    local port=$((55821 + i % ports))
    RUST_LOG=warn taskset -c "$proxy_cpus" "$BIN/prism-proxy" "$@" --listen "127.0.0.1:$port" \
      --admin-listen 127.0.0.1:0 >"$WORK/proxy$i.log" 2>&1 & PIDS+=("$!")
    for _ in $(seq 50); do sleep 0.1; (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; done
    "$BIN/examples/bench_get" preload "http://127.0.0.1:$port" default
  done
  # On a shared port each preload reaches one process (its own memstore): 16 connections
  # reach both but for a chance of 2^-15.
  if [ "$ports" -lt "$processes" ]; then
    for _ in $(seq 16); do "$BIN/examples/bench_get" preload "http://127.0.0.1:55821" default; done
  fi
  # One python parent runs every h2load at once: its own CPU from getrusage, the proxies'
  # from /proc, both over the measured requests only (after the warm-up).
  python3 - "$WORK" "$label" "$processes" "$ports" "$load_cpus" "$threads" "$N" "${PIDS[@]}" <<'PY'
import os, re, resource, subprocess, sys
work, label, processes, ports, cpus, threads, n = sys.argv[1:8]
processes, ports, n, pids = int(processes), int(ports), int(n), sys.argv[8:]
connections = str(4 * processes // ports)
hz = os.sysconf("SC_CLK_TCK")
def proxies_cpu():
    return sum(sum(int(f) for f in open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[11:13]) / hz for p in pids)
def h2(port, count, out):
    return subprocess.Popen(["taskset", "-c", cpus, "h2load", "-t", threads, "-c", connections, "-m", "64",
        "-n", str(count), "-d", f"{work}/get.bin", "-H", "content-type: application/grpc", "-H", "te: trailers",
        "-H", "x-prism-namespace: default", f"http://127.0.0.1:{port}/prism.keyvalue.v1.KeyValueBasic/Get"],
        stdout=out)
for p in [h2(55821 + i, 20000, subprocess.DEVNULL) for i in range(ports)]:
    p.wait()
load_before, proxy_before = resource.getrusage(resource.RUSAGE_CHILDREN), proxies_cpu()
outs = [open(f"{work}/h2-{i}.txt", "w") for i in range(ports)]
for p in [h2(55821 + i, n // ports, outs[i]) for i in range(ports)]:
    p.wait()
load_after, proxy_after = resource.getrusage(resource.RUSAGE_CHILDREN), proxies_cpu()
load = (load_after.ru_utime + load_after.ru_stime - load_before.ru_utime - load_before.ru_stime) * 1e6 / n
rate, ok = 0.0, 0
for i in range(ports):
    text = open(f"{work}/h2-{i}.txt").read()
    rate += float(re.search(r"finished in [^,]+, ([0-9.]+) req/s", text).group(1))
    ok += int(re.search(r"([0-9]+) succeeded", text).group(1))
print(f"config={label} rate={rate:.0f} succeeded={ok}/{n} proxy_cpu_us_per_request={(proxy_after - proxy_before) * 1e6 / n:.2f} "
      f"h2load_cpu_us_per_request={load:.2f}")
PY
  for p in "${PIDS[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
  PIDS=()
}

exec > >(tee "$OUT")
echo "# ci/bench-scaling.sh $(date -u +%FT%TZ) on $(nproc) cores:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "# git $(git rev-parse --short HEAD); profile fast; h2load -m 64, 4 connections per proxy, -n $N in all, after a 20k warm-up"
for round in $(seq "$ROUNDS"); do
  echo "## round $round"
  run current-thread 1 1 0 1 1 --runtime current-thread
  run 1-worker 1 1 0 1 1 --runtime multi-thread --worker-threads 1
  run 2-workers 1 1 0-1 0-1 2 --runtime multi-thread --worker-threads 2
  run 2-processes 2 2 0-1 0-1 1 --runtime current-thread
  run 2-reuse-port 2 1 0-1 0-1 2 --runtime current-thread --reuse-port
done
python3 - "$OUT" <<'PY'
import statistics, sys
rows = [dict(kv.split("=", 1) for kv in l.split()) for l in open(sys.argv[1]) if l.startswith("config=")]
med = lambda cfg, key: statistics.median(float(r[key]) for r in rows if r["config"] == cfg)
proxy, load = med("current-thread", "proxy_cpu_us_per_request"), med("current-thread", "h2load_cpu_us_per_request")
print(f"## model: the current-thread costs, proxy {proxy:.2f} us and h2load {load:.2f} us per request (medians)")
models = {
    # one core each: the slower of the two sets the rate
    "current-thread": min(1e6 / proxy, 1e6 / load),
    "1-worker": min(1e6 / proxy, 1e6 / load),
    # two cores shared by everything
    "2-workers": 2e6 / (proxy + load),
    "2-processes": 2e6 / (proxy + load),
    "2-reuse-port": 2e6 / (proxy + load),
}
for cfg, model in models.items():
    rate = med(cfg, "rate")
    print(f"model config={cfg} predicted={model:.0f} measured_median={rate:.0f} measured_over_predicted={rate / model:.2f} "
          f"proxy_cpu_us_per_request={med(cfg, 'proxy_cpu_us_per_request'):.2f} h2load_cpu_us_per_request={med(cfg, 'h2load_cpu_us_per_request'):.2f}")
PY
