#!/usr/bin/env bash
# End-to-end check of a store on S3 against a local S3 server (moto), both engines.
#
#   bash scripts/s3_check.sh            # needs .venv (README) and the package registry for moto
#
# moto lives in its own venv (/tmp/datadiet-moto) so it never becomes a datadiet dependency. The
# script builds the same versions on two S3 prefixes, one with the local engine and one with
# --engine ray, and fails unless every version id and manifest `files` map is identical, `verify`
# is clean, ingest from s3:// inputs and a tiny training run from the S3 store both work, and a
# `sweep --engine ray` trained from the S3 store gives the local sweep's ids.
set -euo pipefail
cd "$(dirname "$0")/.."
MOTO=/tmp/datadiet-moto
PORT=${PORT:-5055}
[ -x "$MOTO/bin/moto_server" ] || { python3 -m venv "$MOTO" && "$MOTO/bin/pip" install -q "moto[server]"; }
"$MOTO/bin/moto_server" -p "$PORT" >/tmp/datadiet-moto.log 2>&1 &
SERVER=$!
WORK=$(mktemp -d)
trap 'kill $SERVER; rm -rf "$WORK"' EXIT
sleep 3
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test PYTHONPATH=src
Q="endpoint_override=127.0.0.1:$PORT&scheme=http&region=us-east-1"
C=.venv/bin/curate
.venv/bin/python - "$Q" <<'PY'
import sys
import pyarrow.fs as fs
s3, _ = fs.FileSystem.from_uri(f"s3://dd-bucket/x?{sys.argv[1]}&allow_bucket_creation=true")
s3.create_dir("dd-bucket")
PY
for engine in local ray; do
  export DATADIET_CACHE="$WORK/cache-$engine"
  S="s3://dd-bucket/$engine?$Q"
  $C corpus --stories 3000 --store "$S" --quiet
  $C dedupe stories-train --verify --store "$S" --engine "$engine" --quiet
  $C duplicate stories-train --rate 0.5 --near 0.1 --store "$S" --engine "$engine" --quiet
  $C subset stories-train --fraction 0.5 --store "$S" --engine "$engine" --quiet
  $C stats stories-train --store "$S" --engine "$engine" --quiet >/dev/null
  $C verify --store "$S" --quiet
  $C ls --store "$S" --json | .venv/bin/python -c "
import json, sys
rows = json.load(sys.stdin)
print('\n'.join(sorted(r['name'] + '@' + r['version'] for r in rows)))" >"$WORK/$engine.refs"
  while read -r ref; do
    $C show "$ref" --store "$S" --json | .venv/bin/python -c "import json, sys; print(json.load(sys.stdin)['files'])"
  done <"$WORK/$engine.refs" >"$WORK/$engine.files"
done
diff "$WORK/local.refs" "$WORK/ray.refs" && diff "$WORK/local.files" "$WORK/ray.files"
echo "same versions and files on both engines: $(wc -l <"$WORK/local.refs") versions"
export DATADIET_CACHE="$WORK/cache-train"   # an empty cache: everything comes from S3
$C export stories-train "$WORK/in.jsonl" --store "s3://dd-bucket/local?$Q" --quiet
.venv/bin/python - "$Q" "$WORK/in.jsonl" <<'PY'
import sys
import pyarrow.fs as fs
s3, _ = fs.FileSystem.from_uri(f"s3://dd-bucket/x?{sys.argv[1]}")
fs.copy_files(sys.argv[2], "dd-bucket/corpus/in.jsonl", destination_filesystem=s3)
PY
a=$($C ingest "s3://dd-bucket/corpus/?$Q" --name web --store "s3://dd-bucket/local?$Q" --json | .venv/bin/python -c "import json,sys; print(json.load(sys.stdin)['ref'])")
b=$($C ingest "s3://dd-bucket/corpus/?$Q" --name web --store "s3://dd-bucket/ray?$Q" --engine ray --json | .venv/bin/python -c "import json,sys; print(json.load(sys.stdin)['ref'])")
[ "$a" = "$b" ] && echo "ingest from s3:// inputs: $a on both engines"
$C tokenizer train stories-train --vocab 512 --store "s3://dd-bucket/local?$Q" --quiet
$C train stories-train --val stories-val --preset tiny --steps 5 --set threads=1 --store "s3://dd-bucket/local?$Q"
# The same small sweep trained on Ray from the S3 store and locally from a folder: the same sweep and run ids.
SW=(sweep --base stories-train --val stories-val --sizes 1 --rates 0,1 --preset tiny --steps 6 --vocab 300 --set threads=1)
# Fresh stores on both sides: the commands above gave stories-train new current versions on the S3 prefixes.
$C corpus --stories 3000 --store "$WORK/folder" --quiet
$C corpus --stories 3000 --store "s3://dd-bucket/sweep?$Q" --quiet
local_sweep=$($C "${SW[@]}" --store "$WORK/folder" --json --quiet | .venv/bin/python -c "import json,sys; d=json.load(sys.stdin); print(d['ref'], sorted(r['run'] for r in d['runs']))")
ray_sweep=$($C "${SW[@]}" --store "s3://dd-bucket/sweep?$Q" --engine ray --json --quiet | .venv/bin/python -c "import json,sys; d=json.load(sys.stdin); print(d['ref'], sorted(r['run'] for r in d['runs']))")
if [ "$local_sweep" != "$ray_sweep" ]; then echo "sweep ids differ: local $local_sweep, ray $ray_sweep"; exit 1; fi
echo "sweep --engine ray on S3 = local sweep: $ray_sweep"
echo "S3 check passed"
