#!/usr/bin/env bash
# DICOMweb benchmark: renkei against the anchor (Orthanc from Debian with its DICOMweb
# plugin), side by side in one run, over an index of INDEX instances.
#
#   bench/dicomweb.sh [INDEX]        (default 100000)
#
# Both archives start empty on the same disk and get the same data over C-STORE (4
# associations): INDEX small CT instances in renkei-testkit's index layout (100 per study,
# two studies per patient, dates over ten years, common Japanese names), then one study of
# 500 CT slices of 512×512 (256 MiB). bench/dicomweb.py then measures QIDO-RS, series
# metadata, WADO-RS, rendering and STOW-RS against renkei, then against Orthanc. Results are
# printed as a Markdown table and kept under bench/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
index=${1:-100000}
source bench/lib.sh
bench_setup dicomweb

data="$work/renkei/data"
"$bin/renkei" --data-dir "$data" facility add bench --name Bench --ae BENCH >/dev/null
token=$("$bin/renkei" --data-dir "$data" token create --facility bench --role uploader | tail -1)
"$bin/renkei" --data-dir "$data" serve --http-listen 127.0.0.1:0 --dicom-listen 127.0.0.1:0 > "$work/ready" 2> "$work/renkei.log" &
renkei_pid=$!
until grep -q "renkei ready" "$work/ready" 2>/dev/null; do sleep 0.05; done
renkei_http=$(grep -o 'http=[^ ]*' "$work/ready" | cut -d= -f2)
renkei_dicom=$(grep -o 'dicom=[^ ]*' "$work/ready" | cut -d= -f2)
orthanc_dicom=$(free_port); orthanc_http=$(free_port)
orthanc_pid=$(bash "$anchor" start "$work/orthanc" "$orthanc_dicom" "$orthanc_http" | tail -1)

populate() { # system address called
  local started=$SECONDS
  "$bin/renkei-testkit" send --address "$2" --called "$3" --associations 4 --count "$index" --index --run 1 |
    python3 -c "import json,sys; r=json.load(sys.stdin); print(json.dumps({'system':'$1','measure':'populate_index','n':r['count'],'failed':r['failed'],'instances_per_sec':r['instances_per_sec']}))" >> "$results"
  "$bin/renkei-testkit" send --address "$2" --called "$3" --associations 4 --count 500 --size 512 --run 2 > /dev/null
  echo "$1: populated in $((SECONDS - started)) s" >&2
}
populate renkei "$renkei_dicom" RENKEI
populate orthanc "127.0.0.1:$orthanc_dicom" ORTHANC

# STOW-RS material: 1000 CT slices of 256×256 (128 KiB), as Part-10 files.
mkdir -p "$work/stow"
for i in $(seq 0 999); do "$bin/renkei-testkit" ct "$work/stow/$(printf %04d "$i").dcm" --size 256 --n $((1000000 + i)); done

TESTKIT="$bin/renkei-testkit" python3 bench/dicomweb.py renkei "http://$renkei_http/dicom-web" "$token" $((index / 200)) "$work/stow" >> "$results"
TESTKIT="$bin/renkei-testkit" python3 bench/dicomweb.py orthanc "http://127.0.0.1:$orthanc_http/dicom-web" - $((index / 200)) "$work/stow" >> "$results"
echo "{\"system\":\"renkei\",\"measure\":\"peak_rss\",\"rss_mb\":$(peak_rss_mb "$renkei_pid")}" >> "$results"
echo "{\"system\":\"orthanc\",\"measure\":\"peak_rss\",\"rss_mb\":$(peak_rss_mb "$orthanc_pid")}" >> "$results"

python3 - "$results" "$index" <<'PY' | tee "$out/dicomweb-$stamp.md"
import json, sys
rows = {(r["system"], r["measure"]): r for r in map(json.loads, open(sys.argv[1]))}
def cell(system, measure, key):
    value = rows.get((system, measure), {}).get(key)
    return "" if value is None else value
print(f"Index: {int(sys.argv[2]):,} instances plus one 500-instance CT study.\n")
print("| measure | renkei p50 ms | renkei p99 ms | Orthanc p50 ms | Orthanc p99 ms | rate renkei | rate Orthanc | renkei/Orthanc |")
print("|---|---|---|---|---|---|---|---|")
for measure, rate in [("qido_patient_id", None), ("qido_name_prefix", None), ("qido_date_range", None),
                      ("series_metadata_500", None), ("rendered_ct_512", None), ("wado_study_500", "mb_per_sec"),
                      ("stow_4_clients", "instances_per_sec"), ("populate_index", "instances_per_sec")]:
    r, o = rows.get(("renkei", measure), {}), rows.get(("orthanc", measure), {})
    if rate:
        ratio = r.get(rate, 0) / max(o.get(rate, 0), 1e-9)
    else:
        ratio = o.get("p50_ms", 0) / max(r.get("p50_ms", 0), 1e-9)
    print(f"| {measure} | {cell('renkei', measure, 'p50_ms')} | {cell('renkei', measure, 'p99_ms')} | "
          f"{cell('orthanc', measure, 'p50_ms')} | {cell('orthanc', measure, 'p99_ms')} | "
          f"{r.get(rate, '') if rate else ''} | {o.get(rate, '') if rate else ''} | {ratio:.1f}× |")
print(f"\nPeak RSS: renkei {cell('renkei', 'peak_rss', 'rss_mb')} MB, Orthanc {cell('orthanc', 'peak_rss', 'rss_mb')} MB. "
      "Latency ratios are Orthanc p50 / renkei p50; rate ratios renkei / Orthanc.")
PY
