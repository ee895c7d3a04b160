# Sourced by the ci/bench-*.sh scripts: CPU accounting of one tool run. Needs $WORK.
# CPU seconds (user+system) a process used, from /proc/<pid>/stat.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15)/hz}' "/proc/$1/stat"; }
# Runs a command pinned to cpu1 and writes the CPU seconds it used to $WORK/cpu.
measured() {
  taskset -c 1 "$@" & local pid=$! cpu=0
  while kill -0 "$pid" 2>/dev/null; do cpu="$(cpu_s "$pid" 2>/dev/null || echo "$cpu")"; sleep 0.2; done
  wait "$pid" || true
  echo "$cpu" > "$WORK/cpu"
}
