#!/usr/bin/env bash
# Re-measures the shipped results (results_db/*.jsonl) from scratch with this machine's
# toolchains: the README's quick-start example and KWS on cortex-m4. Run it after changing
# templates (their hash keys the shipped entries) on a machine set up by scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
db="sqlite:///$work/ship.sqlite"
export AUTOTUNE_SHIPPED=0
models=${AUTOTUNE_MODELS:-../shared/models}

autotune example --out "$work/example"
autotune "$work/example/quickstart.tflite" --target cortex-m4 --trials 12 --db "$db" \
  --out "$work/qs" --no-library
autotune db export --all --db "$db" --target cortex-m4 --model "$work/example/quickstart.tflite" \
  > results_db/quickstart_cortex-m4.jsonl
if [ -f "$models/kws_ref_model.tflite" ]; then
  autotune "$models/kws_ref_model.tflite" --target cortex-m4 --trials 40 --db "$db" \
    --out "$work/kws" --no-library
  autotune db export --all --db "$db" --target cortex-m4 --model "$models/kws_ref_model.tflite" \
    > results_db/kws_ref_model_cortex-m4.jsonl
fi
ls -l results_db/*.jsonl
