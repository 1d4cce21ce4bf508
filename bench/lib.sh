# Shared by the bench/ scripts (sourced, not run): builds the release binaries and sets up a
# scratch directory, a results file under bench/out/ and the anchor (Orthanc) launcher.
#   bench_setup NAME   sets bin, anchor, work, out, stamp and results ($out/NAME-$stamp.jsonl)
#   start_postgres DIR [PORT], settle_postgres [PORT], stop_postgres: a scratch PostgreSQL
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/renkei-target}"
export RENKEI_LOG=warn

bench_setup() {
  cargo build -q --release -p renkei -p renkei-testkit
  bin="$CARGO_TARGET_DIR/release"
  anchor=../shared/bench/orthanc-anchor.sh
  work=$(mktemp -d /var/tmp/renkei-bench.XXXXXX)
  out=bench/out; mkdir -p "$out"
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  results="$out/$1-$stamp.jsonl"
  # (`kill 0` would signal this whole process group, the trap's own shell included.)
  trap 'bash "$anchor" stop "$work/orthanc" >/dev/null 2>&1 || true; [ -z "${renkei_pid:-}" ] || kill "$renkei_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
peak_rss_mb() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

# A scratch PostgreSQL cluster from Debian's binaries (runuser to postgres when root).
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

start_postgres() { # dir [tcp_port: also listen on loopback, for Orthanc's plugin]
  mkdir -p "$1/socket"
  if [ "$(id -u)" = 0 ]; then chmod 755 "$work"; chown -R postgres: "$1"; fi
  as_postgres "$pg_bin/initdb" -D "$1/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null
  local listen="-c listen_addresses=''"
  [ -n "${2:-}" ] && listen="-c listen_addresses=127.0.0.1 -p $2"
  as_postgres "$pg_bin/pg_ctl" -D "$1/data" -l "$1/log" -w start \
    -o "-k $1/socket $listen -c shared_buffers=1GB -c max_connections=50" >/dev/null
  pg_dir=$1
}
# After a bulk fill, both systems' PostgreSQL indexes are vacuumed and analyzed once, as
# autovacuum would do in time anyway: otherwise whichever system is measured while
# autovacuum still works through a million fresh rows pays for it.
settle_postgres() { as_postgres "$pg_bin/psql" -h "$pg_dir/socket" -p "${1:-5432}" -U postgres -qAt -c "VACUUM ANALYZE"; }
stop_postgres() { as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null || true; }
