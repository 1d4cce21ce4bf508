#!/usr/bin/env bash
# C-STORE ingest benchmark: renkei against the anchor (Orthanc from Debian), side by side.
#
#   bench/ingest.sh [ROUNDS]
#
# For each configuration (instance size x parallel associations) both archives are started
# fresh on empty data directories on the same disk; then ROUNDS runs of the same synthetic
# CT slices go to each, alternating renkei and Orthanc. The sender is renkei-testkit's Rust
# SCU (every instance is built in memory before the clock starts; one task per association;
# each C-STORE waits for its response). Reported per configuration: medians of the runs,
# and the server's peak RSS (VmHWM) over its runs. Results are printed as a Markdown table
# and kept under bench/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
source bench/lib.sh
bench_setup ingest

start_renkei() {
  rm -rf "$work/renkei"; mkdir -p "$work/renkei"
  "$bin/renkei" --data-dir "$work/renkei/data" facility add bench --name Bench --ae BENCH >/dev/null
  renkei_port=$(free_port)
  "$bin/renkei" --data-dir "$work/renkei/data" serve --http-listen 127.0.0.1:0 --dicom-listen "127.0.0.1:$renkei_port" \
    > "$work/renkei/ready" 2> "$work/renkei/log" &
  renkei_pid=$!
  until grep -q "renkei ready" "$work/renkei/ready" 2>/dev/null; do sleep 0.05; done
}

start_orthanc() {
  bash "$anchor" stop "$work/orthanc" >/dev/null 2>&1 || true
  rm -rf "$work/orthanc"
  orthanc_port=$(free_port)
  orthanc_pid=$(bash "$anchor" start "$work/orthanc" "$orthanc_port" "$(free_port)" | tail -1)
}

send() { # system port called associations size count run
  "$bin/renkei-testkit" send --address "127.0.0.1:$2" --called "$3" --associations "$4" --size "$5" --count "$6" --run "$7" |
    python3 -c "import json,sys; r=json.load(sys.stdin); r['system']='$1'; r['size']=$5; print(json.dumps(r))" >> "$results"
}

run=1000
for size in 256 512; do
  count=$([ "$size" = 256 ] && echo 1000 || echo 500)
  for associations in 1 4; do
    start_renkei; start_orthanc
    # Warm-up: first association, first file, first index pages.
    send warmup "$renkei_port" RENKEI 1 "$size" 20 $((run++)); send warmup "$orthanc_port" ORTHANC 1 "$size" 20 $((run++))
    for _ in $(seq "$rounds"); do
      send renkei "$renkei_port" RENKEI "$associations" "$size" "$count" $((run++))
      send orthanc "$orthanc_port" ORTHANC "$associations" "$size" "$count" $((run++))
    done
    echo "{\"system\":\"renkei\",\"rss_mb\":$(peak_rss_mb "$renkei_pid"),\"size\":$size,\"associations\":$associations}" >> "$results"
    echo "{\"system\":\"orthanc\",\"rss_mb\":$(peak_rss_mb "$orthanc_pid"),\"size\":$size,\"associations\":$associations}" >> "$results"
    kill "$renkei_pid"; wait "$renkei_pid" 2>/dev/null || true
    bash "$anchor" stop "$work/orthanc" >/dev/null
  done
done

python3 - "$results" "$rounds" <<'PY' | tee "$out/ingest-$stamp.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
runs = [r for r in rows if "instances_per_sec" in r and r["system"] != "warmup"]
rss = {(r["system"], r["size"], r["associations"]): r["rss_mb"] for r in rows if "rss_mb" in r}
print(f"| instance | assoc. | system | inst/s | MB/s | p50 ms | p99 ms | peak RSS MB | failed | renkei/Orthanc |")
print(f"|---|---|---|---|---|---|---|---|---|---|")
for size in (256, 512):
    for assoc in (1, 4):
        med = {}
        for system in ("renkei", "orthanc"):
            sel = [r for r in runs if r["system"] == system and r["size"] == size and r["associations"] == assoc]
            m = {k: statistics.median(r[k] for r in sel) for k in ("instances_per_sec", "mb_per_sec", "p50_ms", "p99_ms")}
            m["failed"] = sum(r["failed"] for r in sel)
            m["bytes"] = sel[0]["bytes"] // sel[0]["count"]
            med[system] = m
        ratio = med["renkei"]["instances_per_sec"] / med["orthanc"]["instances_per_sec"]
        for system in ("renkei", "orthanc"):
            m = med[system]
            label = f"{m['bytes'] // 1024} KiB"
            print(f"| {label} | {assoc} | {system} | {m['instances_per_sec']:.0f} | {m['mb_per_sec']:.1f} | {m['p50_ms']:.2f} | "
                  f"{m['p99_ms']:.2f} | {rss[(system, size, assoc)]} | {m['failed']} | {'%.1f×' % ratio if system == 'renkei' else ''} |")
print(f"\nMedians of {sys.argv[2]} runs per system and configuration.")
PY
