#!/usr/bin/env bash
# The cross-facility dose benchmark view over a million exams, on SQLite and PostgreSQL.
#
#   bench/dose-view.sh [EXAMS] [REPEATS] [BACKENDS]   (defaults 1000000, 20, "sqlite postgres")
#
# renkei-testkit fill-exams writes EXAMS synthetic exams through the real store, as the
# extractor writes them (34 facilities with three CTs and an angiography room each; the
# adult CT and IVR DRL categories, weighted 1/rank so that routine head CT holds about a
# quarter; three years; see crates/testkit/src/exams.rs). Then `renkei serve` runs on that
# index and an administrator's token asks GET /api/dose/benchmark over HTTP, as the console
# does: per facility and per device, quartiles, median against the DRL. Each question is
# asked once cold (first after start) and REPEATS times warm; the target is ≤ 500 ms.
# Then the other requests the console's dose page makes (no target: how long the page
# waits), for the administrator (the whole group) and for one facility's token.
# Results are printed as Markdown and kept in bench/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
exams=${1:-1000000}
repeats=${2:-20}
backends=${3:-sqlite postgres}
source bench/lib.sh
bench_setup dose-view

# category metric [query…]: the questions, largest category first.
questions=(
  "ct.head dlp"
  "ct.head ctdivol"
  "ct.chest dlp"
  "ivr.pci dap"
  "ct.head dlp since=1704034800"
)
# The dose page's other requests, for head CT's CTDIvol (alerts: the past year).
page=(
  "distribution?kind=ct&category=ct.head&metric=ctdivol&by=device"
  "distribution?kind=ct&category=ct.head&metric=ctdivol&by=device_month"
  "exams?kind=ct&category=ct.head&limit=5000"
  "workload?kind=ct&category=ct.head"
  "alerts?since=$(( $(date +%s) - 365 * 86400 ))"
)

timed() { # token url: one line of milliseconds, cold then warm
  for i in $(seq 0 "$repeats"); do
    curl -sf -o /dev/null -w '%{time_total} ' -H "Authorization: Bearer $1" "$2"
  done
}

measure() { # backend db_args…
  local backend=$1; shift
  local data="$work/data-$backend"
  "$bin/renkei-testkit" fill-exams --data-dir "$data" "$@" --count "$exams" |
    python3 -c "import json,sys; r=json.load(sys.stdin); r['system']='fill-$backend'; print(json.dumps(r))" >> "$results"
  [ "$backend" = postgres ] && settle_postgres
  local token; token=$("$bin/renkei" --data-dir "$data" "$@" token create --admin | tail -1)
  local facility; facility=$("$bin/renkei" --data-dir "$data" "$@" token create --facility dose01 | tail -1)
  "$bin/renkei" --data-dir "$data" "$@" serve --http-listen 127.0.0.1:0 --dicom-listen 127.0.0.1:0 \
    > "$work/ready" 2> "$work/log" &
  renkei_pid=$!
  until grep -q "renkei ready" "$work/ready" 2>/dev/null; do sleep 0.1; done
  local http; http=$(sed -n 's/.*http=\([0-9.:]*\).*/\1/p' "$work/ready" | head -1)
  for question in "${questions[@]}"; do
    read -r category metric extra <<< "$question"
    local url="http://$http/api/dose/benchmark?category=$category&metric=$metric${extra:+&$extra}"
    local times=()
    for i in $(seq 0 "$repeats"); do
      times+=("$(curl -sf -o "$work/answer.json" -w '%{time_total}' -H "Authorization: Bearer $token" "$url")")
    done
    python3 - "$backend" "$question" "$work/answer.json" "${times[@]}" >> "$results" <<'PY'
import json, statistics, sys
backend, question, answer = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
cold, *warm = [float(t) * 1000 for t in sys.argv[4:]]
warm.sort()
print(json.dumps({"system": backend, "question": question, "cold_ms": round(cold, 1),
                  "median_ms": round(statistics.median(warm), 1),
                  "p95_ms": round(warm[max(0, int(len(warm) * 0.95) - 1)], 1), "max_ms": round(warm[-1], 1),
                  "exams": sum(g["exams"] for g in answer["facilities"]),
                  "facilities": len(answer["facilities"]), "devices": len(answer["devices"])}))
PY
  done
  for request in "${page[@]}"; do
    for who in administrator facility; do
      local bearer=$token; [ "$who" = facility ] && bearer=$facility
      python3 - "$backend" "$who" "$request" $(timed "$bearer" "http://$http/api/dose/$request") >> "$results" <<'PY'
import json, statistics, sys
backend, who, request = sys.argv[1:4]
cold, *warm = [float(t) * 1000 for t in sys.argv[4:]]
print(json.dumps({"system": backend, "page": request, "who": who, "cold_ms": round(cold, 1),
                  "median_ms": round(statistics.median(warm), 1), "max_ms": round(max(warm), 1)}))
PY
    done
  done
  kill "$renkei_pid"; wait "$renkei_pid" 2>/dev/null || true
  rm -rf "$data"
}

for backend in $backends; do
  case "$backend" in
    sqlite) measure sqlite ;;
    postgres)
      start_postgres "$work/pg"
      measure postgres --database-url "postgres://postgres@localhost/postgres?host=$work/pg/socket"
      stop_postgres ;;
  esac
done

python3 - "$results" "$exams" <<'PY' | tee "$out/dose-view-$stamp.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{int(sys.argv[2]):,} exams.")
print()
for r in rows:
    if r["system"].startswith("fill-"):
        print(f"- {r['system'][5:]}: filled in {r['seconds']} s ({r['exams_per_sec']} exams/s)")
print()
print("| index | category, metric | exams in it | facilities / devices | cold ms | median ms | p95 ms | max ms |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    if "question" in r:
        print(f"| {r['system']} | {r['question']} | {r['exams']:,} | {r['facilities']} / {r['devices']} | "
              f"{r['cold_ms']} | {r['median_ms']} | {r['p95_ms']} | {r['max_ms']} |")
print()
print("| index | the dose page's request | token | cold ms | median ms | max ms |")
print("|---|---|---|---|---|---|")
for r in rows:
    if "page" in r:
        print(f"| {r['system']} | {r['page']} | {r['who']} | {r['cold_ms']} | {r['median_ms']} | {r['max_ms']} |")
PY
