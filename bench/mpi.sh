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

python3 - "$results" <<'PY' | tee "$out/mpi-$stamp.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| records | system | seconds | auto-link precision | auto-link recall | F1 (pairs, auto) | recall with review | "
      "F1 (clusters, auto) | review per 1,000 |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    report = r.get("report", r)
    seconds = r.get("total_seconds", r.get("seconds"))
    print(f"| {r['records']:,} | {r['system']} | {seconds} | {report['pairs_auto']['precision']:.4f} | "
          f"{report['pairs_auto']['recall']:.4f} | {report['pairs_auto']['f1']:.4f} | {report['pairs_review']['recall']:.4f} | "
          f"{report['clusters_auto']['f1']:.4f} | {report['review_per_1000_records']:.1f} |")
PY
