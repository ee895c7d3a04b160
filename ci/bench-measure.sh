# Sourced by the ci/bench-*.sh scripts: h2load, and CPU accounting of one tool run
# (measured needs $WORK).
# h2load from apt (nghttp2-client), once.
need_h2load() {
  command -v h2load >/dev/null && return
  apt-get install -y nghttp2-client >/dev/null || { apt-get update >/dev/null && apt-get install -y nghttp2-client >/dev/null; }
}
# A work folder $WORK holding the gRPC-framed GetRequest body h2load sends
# ($WORK/get.bin, from $BIN/examples/bench_get); on exit every pid in PIDS is killed and
# the folder removed.
h2_work() {
  WORK="$(mktemp -d)"
  PIDS=()
  trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
  "$BIN/examples/bench_get" request-body "$WORK/get.bin"
}
# CPU seconds (user+system) a process used, from /proc/<pid>/stat.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15)/hz}' "/proc/$1/stat"; }
# Runs a command pinned to cpu1 and writes the CPU seconds it used to $WORK/cpu.
measured() {
  taskset -c 1 "$@" & local pid=$! cpu=0
  while kill -0 "$pid" 2>/dev/null; do cpu="$(cpu_s "$pid" 2>/dev/null || echo "$cpu")"; sleep 0.2; done
  wait "$pid" || true
  echo "$cpu" > "$WORK/cpu"
}
