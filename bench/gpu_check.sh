#!/usr/bin/env bash
# One GPU check: correctness of every training lever, then every benchmark variant timed, then the
# memory plan against the measured peaks; about 7 minutes on one H100 (budget: under 8).
#
# Prepare on a machine with PyPI access (writes the git-ignored bench/out/gpu_bundle, ~53 MiB):
#   .venv/bin/python bench/gpu_bundle.py --bitsandbytes
# Run on the GPU machine from the repository root (its torch/transformers/accelerate/peft/triton/
# liger-kernel are used; the bundle's wheels fill in pydantic, xxhash, rich... without touching them):
#   OUT=/some/dir bash bench/gpu_check.sh
# Results: $OUT/gpu_checks.json, $OUT/train_throughput.json, $OUT/plan_check.json, $OUT/*.log
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
OUT=${OUT:-$REPO/bench/out/gpu}
BUNDLE=${VF_GPU_BUNDLE:-$REPO/bench/out/gpu_bundle}
DEPS=${TMPDIR:-/tmp}/vf-gpu-deps
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$DEPS"
[ -d "$BUNDLE" ] || { echo "no bundle at $BUNDLE: run bench/gpu_bundle.py first" >&2; exit 2; }
export VF_GPU_BUNDLE=$BUNDLE HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# install only the wheels whose module is missing here (never shadow the machine's own packages)
for pair in pydantic:pydantic pydantic_core:pydantic_core annotated_types:annotated_types \
            typing_inspection:typing_inspection typing_extensions:typing_extensions xxhash:xxhash \
            rich:rich markdown_it:markdown_it_py mdurl:mdurl pygments:pygments yaml:pyyaml \
            bitsandbytes:bitsandbytes; do
  mod=${pair%%:*}; dist=${pair##*:}
  if ! $PY -c "import $mod" 2>/dev/null; then
    whl=$(ls "$BUNDLE"/wheels/${dist//-/_}-*.whl 2>/dev/null | head -1)
    [ -n "$whl" ] && $PY -m pip install -q --no-deps --no-index --target "$DEPS" "$whl" && echo "installed $dist"
  fi
done
export PYTHONPATH=$REPO:$DEPS${PYTHONPATH:+:$PYTHONPATH}
$PY -c "import torch, transformers, accelerate; print('torch', torch.__version__, 'transformers', transformers.__version__, 'accelerate', accelerate.__version__, torch.cuda.get_device_name(0))" | tee "$OUT/versions.log"

status=0
# 1. correctness of the levers on CUDA (~1 min)
timeout 180 $PY bench/gpu_check.py checks --out "$OUT/gpu_checks.json" 2>&1 | tee "$OUT/checks.log" || status=1
# 2. every variant, 1.1B shape, seq 2048 x batch 8, bf16 (~5 min: two of them compile)
timeout 330 $PY bench/train_throughput.py --preset gpu-1b --steps 20 --warmup 5 --docs 3000 \
  --text "$BUNDLE/text.jsonl.gz" --tokenizer "$BUNDLE/tokenizer" --timeout 150 \
  --out "$OUT/train_throughput.json" > "$OUT/bench.log" 2>&1 || status=1
grep -E "tok/s|FAILED" "$OUT/bench.log"
# 3. the memory plan against the measured peaks
[ -f "$OUT/train_throughput.json" ] && $PY bench/gpu_check.py plan-vs-measured "$OUT/train_throughput.json" \
  --out "$OUT/plan_check.json" 2>&1 | tee "$OUT/plan.log"
exit $status
