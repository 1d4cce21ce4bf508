# Shared by the bench/ scripts (sourced, not run): builds the release binaries and sets up a
# scratch directory, a results file under bench/out/ and the anchor (Orthanc) launcher.
#   bench_setup NAME   sets bin, anchor, work, out, stamp and results ($out/NAME-$stamp.jsonl)
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
  trap 'bash "$anchor" stop "$work/orthanc" >/dev/null 2>&1 || true; kill "${renkei_pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
peak_rss_mb() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }
