#!/usr/bin/env bash
# Patient matching (名寄せ) quality and speed, beside Splink on the same data and machine.
#
#   bench/mpi.sh [RECORDS] [LARGE]      (defaults 100000 and 1000000)
#
# 1. bench/mpi_population.py writes a synthetic population of RECORDS records across 30
#    facilities, with its truth (see that script for the names and the errors injected).
# 2. renkei-testkit link: renkei's matching engine trains on it, links it and is scored
#    against the truth (precision, recall and F1 over pairs and clusters at both thresholds,
#    and the review load), with wall times.
# 3. bench/mpi_splink.py: Splink (DuckDB) on the same file, same thresholds, same measures.
# 4. Both again on a population of LARGE records, for speed.
# 5. The index itself, on SQLite (both sizes) and PostgreSQL (RECORDS): every record but the
#    last 1,000 recorded as a patient (renkei-testkit fill-patients), `renkei mpi rebuild`
#    timed end to end (read, estimate, link, write), `renkei mpi evaluate` against the truth,
#    then the last 1,000 recorded and matched incrementally by `renkei mpi match`, which
#    reports each record's time from reading its candidates to the commit.
# Results are printed as Markdown and kept under bench/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-100000}
large=${2:-1000000}
source bench/lib.sh
bench_setup mpi
python3 -c 'import faker, gimei, splink, pandas' 2>/dev/null || python3 -m pip install -q faker gimei splink pandas

for size in "$records" "$large"; do
  population="$work/population-$size.tsv"
  python3 bench/mpi_population.py "$size" "$population"
  "$bin/renkei-testkit" link "$population" |
    python3 -c "import json,sys; r=json.load(sys.stdin); r['system']='renkei'; print(json.dumps(r))" >> "$results"
  python3 bench/mpi_splink.py "$population" 2>/dev/null |
    python3 -c "import json,sys; r=json.load(sys.stdin); r['system']='splink'; print(json.dumps(r))" >> "$results"
done

index_run() { # backend size population index_args...
  local backend=$1 size=$2 population=$3; shift 3
  local held=$((size - 1000))
  "$bin/renkei-testkit" fill-patients "$population" "$@" --count "$held" > /dev/null
  local started=$(date +%s.%N)
  "$bin/renkei" "$@" mpi rebuild 2>/dev/null > "$work/rebuild.txt"
  local seconds=$(python3 -c "print(round($(date +%s.%N) - $started, 1))")
  "$bin/renkei" "$@" mpi evaluate "$population" > "$work/evaluate.txt"
  "$bin/renkei-testkit" fill-patients "$population" "$@" --from "$held" > /dev/null
  "$bin/renkei" "$@" mpi match 2>/dev/null > "$work/match.txt"
  python3 - "$backend" "$size" "$seconds" "$work" >> "$results" <<'PY'
import json, re, sys
backend, size, seconds, work = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
evaluate = open(f"{work}/evaluate.txt").read()
def row(label):
    line = next(l for l in evaluate.splitlines() if l.startswith(label))
    predicted, correct, precision, recall, f1 = line.split()[-5:]
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}
match = open(f"{work}/match.txt").read()
p50, p99 = re.search(r"p50 ([\d.]+) ms, p99 ([\d.]+) ms", match).groups()
print(json.dumps({"system": f"index-{backend}", "records": size, "rebuild_seconds": seconds,
                  "rebuild": open(f"{work}/rebuild.txt").read().strip(),
                  "pairs_auto": row("pairs, auto-link"), "pairs_review": row("pairs, with review"),
                  "clusters_auto": row("clusters, auto-link"),
                  "review_per_1000_records": float(re.search(r"([\d.]+) tasks per 1,000", evaluate).group(1)),
                  "incremental_p50_ms": float(p50), "incremental_p99_ms": float(p99)}))
PY
}
for size in "$records" "$large"; do
  index_run sqlite "$size" "$work/population-$size.tsv" --data-dir "$work/index-$size"
  rm -rf "$work/index-$size"
done
start_postgres "$work/pg"
index_run postgres "$records" "$work/population-$records.tsv" --data-dir "$work/index-pg" \
  --database-url "postgres://postgres@localhost/postgres?host=$work/pg/socket"
stop_postgres

python3 - "$results" <<'PY' | tee "$out/mpi-$stamp.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| records | system | seconds | auto-link precision | auto-link recall | F1 (pairs, auto) | recall with review | "
      "F1 (clusters, auto) | review per 1,000 |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    if r["system"].startswith("index-"):
        continue
    report = r.get("report", r)
    seconds = r.get("total_seconds", r.get("seconds"))
    print(f"| {r['records']:,} | {r['system']} | {seconds} | {report['pairs_auto']['precision']:.4f} | "
          f"{report['pairs_auto']['recall']:.4f} | {report['pairs_auto']['f1']:.4f} | {report['pairs_review']['recall']:.4f} | "
          f"{report['clusters_auto']['f1']:.4f} | {report['review_per_1000_records']:.1f} |")
print()
print("| records | index | rebuild, s | auto-link precision | recall with review | F1 (clusters, auto) | review per 1,000 | incremental p50 / p99 ms |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    if r["system"].startswith("index-"):
        print(f"| {r['records']:,} | {r['system'][6:]} | {r['rebuild_seconds']} | {r['pairs_auto']['precision']:.4f} | "
              f"{r['pairs_review']['recall']:.4f} | {r['clusters_auto']['f1']:.4f} | {r['review_per_1000_records']:.1f} | "
              f"{r['incremental_p50_ms']} / {r['incremental_p99_ms']} |")
PY
