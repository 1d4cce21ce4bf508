#!/usr/bin/env bash
# Group-scale benchmark: renkei with an index of INDEX instances, on SQLite and on
# PostgreSQL, then cold-tier recall from a real S3 server.
#
#   bench/scale.sh [INDEX] [INGEST]      (defaults 1000000 and 20000)
#
# Per backend, on a fresh index:
#  1. C-STORE ingest of INGEST small instances (renkei-testkit send --index, 4 associations)
#     into the empty index: the empty-index rate.
#  2. INDEX synthetic rows recorded through the real store (renkei-testkit fill-index: each
#     row built as a data set, walked and extracted as ingest does; no blobs).
#  3. The same C-STORE ingest of INGEST new instances into the full index.
#  4. bench/scale.py: QIDO-RS and C-FIND by PatientID, and by name prefix within a one-month
#     date range, 1,000 of each.
#  5. The server's peak RSS (VmHWM) over all of that.
# PostgreSQL is Debian's server in a scratch cluster with default settings (fsync on), on a
# Unix socket. Then, on SQLite with an s3s-fs bucket on loopback: a 200-slice CT study of
# 512×512 (100 MiB) goes cold, and WADO-RS retrieves it cold (recall cache emptied) and
# again warm: time to first byte and throughput, with curl.
# Results are printed as Markdown and kept under bench/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
index=${1:-1000000}
ingest=${2:-20000}
source bench/lib.sh
bench_setup scale
s3s="$HOME/.cache/renkei-tools/bin/s3s-fs"
cargo install -q --locked s3s-fs@0.14.1 --features binary --root "$HOME/.cache/renkei-tools" 2>/dev/null || true

serve() { # data_dir index_args...
  local data=$1; shift
  "$bin/renkei" --data-dir "$data" "$@" serve --http-listen 127.0.0.1:0 --dicom-listen 127.0.0.1:0 \
    > "$work/ready" 2>> "$work/renkei.log" &
  renkei_pid=$!
  until grep -q "renkei ready" "$work/ready" 2>/dev/null; do sleep 0.05; done
  http=$(grep -o 'http=[^ ]*' "$work/ready" | cut -d= -f2)
  dicom=$(grep -o 'dicom=[^ ]*' "$work/ready" | cut -d= -f2)
}
stop_serve() { kill "$renkei_pid"; wait "$renkei_pid" 2>/dev/null || true; rm -f "$work/ready"; }

ingest_rate() { # backend measure run
  "$bin/renkei-testkit" send --address "$dicom" --associations 4 --count "$ingest" --index --run "$3" |
    python3 -c "import json,sys; r=json.load(sys.stdin); print(json.dumps({'system':'$1','measure':'$2','n':r['count'],'failed':r['failed'],'instances_per_sec':r['instances_per_sec'],'p99_ms':r['p99_ms']}))" >> "$results"
}

for backend in sqlite postgres; do
  data="$work/$backend/data"; mkdir -p "$data"
  db=(); fill_target=(--data-dir "$data")
  if [ "$backend" = postgres ]; then
    start_postgres "$work/pg"
    url="postgres://postgres@localhost/postgres?host=$work/pg/socket"
    db=(--database-url "$url"); fill_target=(--database-url "$url")
  fi
  "$bin/renkei" --data-dir "$data" "${db[@]}" facility add bench --name Bench --ae BENCH >/dev/null
  token=$("$bin/renkei" --data-dir "$data" "${db[@]}" token create --facility bench | tail -1)

  serve "$data" "${db[@]}"
  ingest_rate "$backend" ingest_empty 7
  stop_serve

  echo "$backend: filling $index rows" >&2
  "$bin/renkei-testkit" fill-index "${fill_target[@]}" --count "$index" --run 1 |
    python3 -c "import json,sys; r=json.load(sys.stdin); print(json.dumps({'system':'$backend','measure':'fill','n':r['count'],'rows_per_sec':r['rows_per_sec']}))" >> "$results"
  [ "$backend" = postgres ] && settle_postgres

  serve "$data" "${db[@]}"
  ingest_rate "$backend" ingest_full 8
  python3 bench/scale.py "$backend" "http://$http/dicom-web" "$token" 127.0.0.1 "${dicom##*:}" RENKEI $((index / 200)) >> "$results"
  echo "{\"system\":\"$backend\",\"measure\":\"peak_rss\",\"rss_mb\":$(peak_rss_mb "$renkei_pid")}" >> "$results"
  stop_serve
  [ "$backend" = postgres ] && stop_postgres
  rm -rf "$work/$backend"
done

# The anchor: Orthanc on its default SQLite index, then on its PostgreSQL plugin (in a scratch
# cluster like renkei's, also on loopback TCP since the plugin wants host and port), filled the same way (bench/orthanc_fill.py
# writes the rows Orthanc itself writes; its files are hard links to one small CT slice, since
# its QIDO-RS reads a file per study). Its C-STORE ingest is measured with fewer instances:
# it stores about 80 a second.
orthanc_ingest=$((ingest / 10))
orthanc_http=$(free_port); orthanc_dicom=$(free_port)
start_orthanc() { # [postgres_url]
  bash "$anchor" start "$work/orthanc" "$orthanc_dicom" "$orthanc_http" ${1:+"$1"} > "$work/orthanc.pid"
  orthanc_pid=$(tail -1 "$work/orthanc.pid")
}
stop_orthanc() { bash "$anchor" stop "$work/orthanc" >/dev/null; while kill -0 "$orthanc_pid" 2>/dev/null; do sleep 0.2; done; }
orthanc_ingest_rate() { # system measure run
  "$bin/renkei-testkit" send --address "127.0.0.1:$orthanc_dicom" --called ORTHANC --associations 4 --count "$orthanc_ingest" --index --run "$3" |
    python3 -c "import json,sys; r=json.load(sys.stdin); print(json.dumps({'system':'$1','measure':'$2','n':r['count'],'failed':r['failed'],'instances_per_sec':r['instances_per_sec'],'p99_ms':r['p99_ms']}))" >> "$results"
}
"$bin/renkei-testkit" ct "$work/template.dcm" --size 16 --n 0
for system in orthanc orthanc_pg; do
  url=""
  if [ "$system" = orthanc_pg ]; then
    pg_port=$(free_port); start_postgres "$work/opg" "$pg_port"
    url="postgresql://postgres@127.0.0.1:$pg_port/postgres"
  fi
  start_orthanc $url
  orthanc_ingest_rate "$system" ingest_empty 7
  stop_orthanc
  echo "$system: filling $index rows" >&2
  PATH="$pg_bin:$PATH" python3 bench/orthanc_fill.py "$work/orthanc/storage" "$index" "$work/template.dcm" $url |
    python3 -c "import json,sys; r=json.load(sys.stdin); print(json.dumps({'system':'$system','measure':'fill','n':r['count'],'rows_per_sec':r['rows_per_sec']}))" >> "$results"
  [ "$system" = orthanc_pg ] && settle_postgres "$pg_port"
  start_orthanc $url
  orthanc_ingest_rate "$system" ingest_full 8
  python3 bench/scale.py "$system" "http://127.0.0.1:$orthanc_http/dicom-web" - 127.0.0.1 "$orthanc_dicom" ORTHANC $((index / 200)) >> "$results"
  echo "{\"system\":\"$system\",\"measure\":\"peak_rss\",\"rss_mb\":$(peak_rss_mb "$orthanc_pid")}" >> "$results"
  stop_orthanc
  [ "$system" = orthanc_pg ] && stop_postgres
  rm -rf "$work/orthanc" "$work/opg"
done

# Cold recall, on SQLite with an s3s-fs bucket.
mkdir -p "$work/s3/renkei-cold" "$work/cold"
RUST_LOG=info "$s3s" --host 127.0.0.1 --port 0 --access-key bench --secret-key bench-secret "$work/s3" > "$work/s3.log" 2>&1 &
s3_pid=$!
until grep -q "server is running at" "$work/s3.log" 2>/dev/null; do sleep 0.05; done
s3_endpoint=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/s3.log" | head -1)
cat > "$work/cold/renkei.toml" <<EOF
data_dir = "$work/cold/data"
[cold]
endpoint = "$s3_endpoint"
bucket = "renkei-cold"
access_key_id = "bench"
secret_access_key = "bench-secret"
[recall]
prefetch_priors = false
[lifecycle]
cold_after_years = 1
interval_minutes = 0
EOF
cold=(--config "$work/cold/renkei.toml")
"$bin/renkei" "${cold[@]}" facility add bench --name Bench --ae BENCH >/dev/null
token=$("$bin/renkei" "${cold[@]}" token create --facility bench | tail -1)
"$bin/renkei" "${cold[@]}" serve --http-listen 127.0.0.1:0 --dicom-listen 127.0.0.1:0 > "$work/ready" 2>> "$work/renkei.log" &
renkei_pid=$!
until grep -q "renkei ready" "$work/ready" 2>/dev/null; do sleep 0.05; done
http=$(grep -o 'http=[^ ]*' "$work/ready" | cut -d= -f2); dicom=$(grep -o 'dicom=[^ ]*' "$work/ready" | cut -d= -f2)
"$bin/renkei-testkit" send --address "$dicom" --associations 4 --count 200 --size 512 --run 3 > /dev/null
moved=$("$bin/renkei" "${cold[@]}" lifecycle run)
echo "cold: $moved" >&2
study=$(curl -sf -H "Authorization: Bearer $token" "http://$http/dicom-web/studies?PatientID=BENCH001" |
  python3 -c "import json,sys; print(json.load(sys.stdin)[0]['0020000D']['Value'][0])")
retrieve() { # measure
  curl -sf -o /dev/null -w '%{size_download} %{time_starttransfer} %{time_total}' \
    -H "Authorization: Bearer $token" -H 'Accept: multipart/related; type="application/dicom"; transfer-syntax=*' \
    "http://$http/dicom-web/studies/$study" |
    python3 -c "import json,sys; size,ttfb,total=map(float,sys.stdin.read().split()); print(json.dumps({'system':'sqlite','measure':'$1','mb':round(size/1e6,1),'ttfb_ms':round(ttfb*1000,1),'mb_per_sec':round(size/1e6/total,1)}))" >> "$results"
}
for round in 1 2 3; do
  rm -rf "$work/cold/data/recall"/*/*
  retrieve recall_cold
  retrieve recall_warm
done
kill "$renkei_pid" "$s3_pid"; wait 2>/dev/null || true

python3 - "$results" "$index" "$ingest" <<'PY' | tee "$out/scale-$stamp.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def get(system, measure):
    return [r for r in rows if r["system"] == system and r["measure"] == measure]
index, ingest = int(sys.argv[2]), int(sys.argv[3])
print(f"Index: {index:,} instances (synthetic rows) plus C-STORE of {ingest:,} more before and after the fill.\n")
print("| measure | renkei SQLite | renkei PostgreSQL | Orthanc SQLite | Orthanc PostgreSQL | SQLite ratio | PostgreSQL ratio |")
print("|---|---|---|---|---|---|---|")
def rate(system, measure, key):
    r = get(system, measure)
    return r[0][key] if r else float("nan")
SYSTEMS = ("sqlite", "postgres", "orthanc", "orthanc_pg")
for system_measure, label in [("ingest_empty", "C-STORE into the empty index, inst/s"),
                              ("ingest_full", f"C-STORE into the {index:,} index, inst/s")]:
    cells = [f"{rate(s, system_measure, 'instances_per_sec'):.0f}" for s in SYSTEMS]
    ratios = [rate(ours, system_measure, 'instances_per_sec') / rate(theirs, system_measure, 'instances_per_sec')
              for ours, theirs in (("sqlite", "orthanc"), ("postgres", "orthanc_pg"))]
    print(f"| {label} | {' | '.join(cells)} | {ratios[0]:.1f}× | {ratios[1]:.1f}× |")
cells = [f"{rate(s, 'ingest_full', 'instances_per_sec') / rate(s, 'ingest_empty', 'instances_per_sec'):.2f}" for s in SYSTEMS]
print(f"| full / empty | {' | '.join(cells)} | | |")
fills = [f"{rate(s, 'fill', 'rows_per_sec'):.0f}" for s in SYSTEMS]
print(f"| fill, rows/s | {' | '.join(fills)} | | |")
for measure in ("qido_patient_id", "qido_name_prefix_date_range", "cfind_patient_id", "cfind_name_prefix_date_range"):
    cells = []
    for system in SYSTEMS:
        r = get(system, measure)
        cells.append(f"{r[0]['p50_ms']} / {r[0]['p99_ms']} ms ({r[0]['mean_results']} hits)" if r else "")
    p99 = lambda system: get(system, measure)[0]["p99_ms"] if get(system, measure) else float("nan")
    print(f"| {measure} p50 / p99 | {' | '.join(cells)} | {p99('orthanc') / p99('sqlite'):.1f}× (p99) | "
          f"{p99('orthanc_pg') / p99('postgres'):.1f}× (p99) |")
print(f"| peak RSS | {' | '.join(str(rate(s, 'peak_rss', 'rss_mb')) + ' MB' for s in SYSTEMS)} | | |")
print()
for measure in ("recall_cold", "recall_warm"):
    r = get("sqlite", measure)
    if r:
        print(f"- {measure}: {r[0]['mb']} MB study, time to first byte median "
              f"{statistics.median(x['ttfb_ms'] for x in r)} ms, throughput median "
              f"{statistics.median(x['mb_per_sec'] for x in r)} MB/s ({len(r)} runs)")
PY
