#!/usr/bin/env bash
# Dose extraction: what it costs C-STORE ingest, and how fast it reads.
#
#   bench/dose.sh [ROUNDS] [PACE]      (defaults 15 and shipped)
#
# Two renkei servers run side by side on the same disk, identical but for the dose
# extractor: on, and off (extract_every_ms = 0; ingest still queues every dose object, in
# its transaction). PACE is the on server's:
#   shipped: the defaults ([dose] settle_seconds = 5, ingest_quiet_ms = 1000,
#            max_wait_seconds = 60): it reads once this node has stored nothing for a second;
#   eager:   settle_seconds = 0, ingest_quiet_ms = 0: it reads every second while objects
#            still arrive, the worst case (a stream that never pauses for a minute).
# The same synthetic objects go to each, alternating, with renkei-testkit's Rust SCU (one
# association, each C-STORE waiting for its response):
#   rdsr: 1,000 CT RDSRs (three acquisitions each, one study each);
#   ct:   1,000 CT slices of 256×256 in one study (no RDSR: the extractor reads each image
#         once for its dose).
# The anchor is the same server with extraction off; the target is at most 5% more ingest
# time. Each send is followed by a 2 s pause, as between a modality's studies, and so that
# neither server's extractor is still reading while the other is measured. Then the off
# server is stopped and `renkei dose extract` reads everything it queued, timed: the
# extraction rate. Results are printed as Markdown and kept in bench/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-15}
pace=${2:-shipped}
case "$pace" in
  shipped) on_pace='' ;;
  eager) on_pace='settle_seconds = 0\ningest_quiet_ms = 0\n' ;;
  *) echo "PACE is shipped or eager" >&2; exit 2 ;;
esac
source bench/lib.sh
bench_setup dose

start() { # name extract_every_ms [pace lines]
  local dir="$work/$1"
  mkdir -p "$dir"
  printf "[dose]\nextract_every_ms = %s\n${3:-}" "$2" > "$dir/renkei.toml"
  "$bin/renkei" --data-dir "$dir/data" facility add bench --name Bench --ae BENCH >/dev/null
  local port; port=$(free_port)
  "$bin/renkei" --config "$dir/renkei.toml" --data-dir "$dir/data" serve --http-listen 127.0.0.1:0 \
    --dicom-listen "127.0.0.1:$port" > "$dir/ready" 2> "$dir/log" &
  echo "$! $port"
  until grep -q "renkei ready" "$dir/ready" 2>/dev/null; do sleep 0.05; done
}

send() { # label workload port run count
  local kind=(--size 256); [ "$2" = rdsr ] && kind=(--dose)
  "$bin/renkei-testkit" send --address "127.0.0.1:$3" --called RENKEI --calling BENCH --count "$5" --run "$4" "${kind[@]}" |
    python3 -c "import json,sys; r=json.load(sys.stdin); r['system']='$1'; r['workload']='$2'; print(json.dumps(r))" >> "$results"
}

run=5000
for workload in rdsr ct; do
  read -r on_pid on_port < <(start "on-$workload" 1000 "$on_pace")
  read -r off_pid off_port < <(start "off-$workload" 0)
  send warmup "$workload" "$on_port" $((run++)) 20; send warmup "$workload" "$off_port" $((run++)) 20
  for _ in $(seq "$rounds"); do
    send on "$workload" "$on_port" $((run++)) 1000; sleep 2
    send off "$workload" "$off_port" $((run++)) 1000; sleep 2
  done
  # Let the on server finish reading before it stops; then time the off server's backlog.
  sleep 5
  kill "$on_pid" "$off_pid"; wait "$on_pid" "$off_pid" 2>/dev/null || true
  started=$(date +%s.%N)
  summary=$("$bin/renkei" --data-dir "$work/off-$workload/data" dose extract 2>/dev/null)
  seconds=$(python3 -c "print(round($(date +%s.%N) - $started, 2))")
  read_count=$(echo "$summary" | sed -n 's/^read \([0-9]*\) dose objects.*/\1/p')
  exams=$("$bin/renkei" --data-dir "$work/on-$workload/data" dose exams --limit 100000 | tail -n +2 | wc -l)
  echo "{\"system\":\"extract\",\"workload\":\"$workload\",\"read\":$read_count,\"seconds\":$seconds,\"summary\":\"$summary\",\"exams_on\":$exams}" >> "$results"
done

python3 - "$results" "$pace" "$rounds" <<'PY' | tee "$out/dose-$stamp.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"The on server's pace: {sys.argv[2]}; {sys.argv[3]} rounds.")
print()
print("| workload | extractor | runs | failed | median s per 1,000 | quartiles | instances/s | ingest time vs off |")
print("|---|---|---|---|---|---|---|---|")
for workload in ("rdsr", "ct"):
    medians = {}
    for system in ("off", "on"):
        runs = [r for r in rows if r.get("system") == system and r.get("workload") == workload]
        seconds = [r["seconds"] for r in runs]
        medians[system] = statistics.median(seconds)
        q1, _, q3 = statistics.quantiles(seconds, n=4) if len(seconds) > 1 else (seconds[0],) * 3
        rate = statistics.median(r["instances_per_sec"] for r in runs)
        ratio = f"{medians[system] / medians['off']:.3f}×" if system == "on" else "1 (anchor)"
        failed = sum(r["failed"] for r in runs)
        print(f"| {workload} | {system} | {len(runs)} | {failed} | {medians[system]:.2f} | {q1:.2f}–{q3:.2f} | {rate:.0f} | {ratio} |")
print()
print("| workload | objects read by `renkei dose extract` | seconds | objects/s | exams written by the on server |")
print("|---|---|---|---|---|")
for r in rows:
    if r.get("system") == "extract":
        rate = r["read"] / r["seconds"] if r["seconds"] else 0
        print(f"| {r['workload']} | {r['read']:,} | {r['seconds']} | {rate:.0f} | {r['exams_on']:,} |")
PY
