# shellcheck shell=bash
# shellcheck disable=SC2034  # standin_pid, url, port, cefd_pid are these functions' outputs
# bench/e2e/start.sh: sourced by bench/e2e/run and bench/sizing/run, which both run cefd against
# the stand-in on this machine. Each function exits the script with a message when its process
# does not start.

# start_standin BIN WORK [ARGS...]: the stand-in over HTTPS on a free port, its rows in
# WORK/rows.jsonl and its accept log in WORK/rows.jsonl.accept, ARGS added (--bench). Sets
# standin_pid and url, and writes the client secret cefd's configs name (WORK/secret, 0600).
start_standin() {
  local bin=$1 work=$2
  shift 2
  "$bin/tools/azure_standin/cefd-azure-standin" --tls --port 0 --out "$work/rows.jsonl" --cert-dir "$work" \
    --accept-log "$work/rows.jsonl.accept" "$@" --ready-file "$work/url" >"$work/standin.log" 2>&1 &
  standin_pid=$!
  for _ in $(seq 100); do [ -s "$work/url" ] && break; sleep 0.1; done
  [ -s "$work/url" ] || { echo "$0: the stand-in did not start: $(tail -n 3 "$work/standin.log")" >&2; exit 1; }
  url="$(cat "$work/url")"
  printf 'cefd-test-secret\n' >"$work/secret"
  chmod 600 "$work/secret"
}

# start_cefd BIN WORK WRITE_CONFIG: cefd on a random port (UDP and TCP). A random port may be
# taken (by anyone), so it picks again until cefd starts, at most 5 times. Before each try it
# sets `port` and calls WRITE_CONFIG, which writes WORK/cefd.toml for that port. Sets cefd_pid;
# cefd's output goes to WORK/cefd.log.
start_cefd() {
  local bin=$1 work=$2 write_config=$3
  for _ in 1 2 3 4 5; do
    port=$(( 20000 + RANDOM % 20000 ))
    "$write_config"
    "$bin/engine/pipeline/cefd" run --config "$work/cefd.toml" >"$work/cefd.log" 2>&1 &
    cefd_pid=$!
    for _ in $(seq 100); do
      grep -q running "$work/cefd.log" 2>/dev/null && break
      kill -0 "$cefd_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$cefd_pid" 2>/dev/null && return 0
    wait "$cefd_pid" 2>/dev/null || true
  done
  echo "$0: cefd did not start: $(tail -n 3 "$work/cefd.log")" >&2
  exit 1
}
