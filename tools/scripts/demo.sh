#!/bin/sh
# `make demo`: nn's main job end to end on real photos. A pretrained
# ImageNet Inception-v3 trunk is fine-tuned to tell ants from bees
# (hymenoptera: 244 training and 153 validation photos), evaluated,
# exported for inference and used to classify photos.
#
#   tools/scripts/demo.sh NN DATA WEIGHTS OUT
#
# Step counts are chosen to finish in a few minutes on 2 cores: stage 1
# uses nn finetune's defaults (cheap: the trunk's outputs are cached),
# stage 2 (every layer) is cut to a few steps. The full recipe is
# `nn finetune DATA --init-from MODEL --out RUN_DIR` with no step options.
set -eu
NN=$1
DATA=$2
WEIGHTS=$3
OUT=$4
STAGE2_STEPS=${DEMO_STAGE2_STEPS:-8}

for f in "$DATA" "$WEIGHTS"; do
    if [ ! -e "$f" ]; then
        echo "demo: $f not found (the demo needs ../shared: set DEMO_DATA and DEMO_WEIGHTS)" >&2
        exit 1
    fi
done
start=$(date +%s)
rm -rf "$OUT"
mkdir -p "$OUT"
stage() { echo; echo "== $* ($(( $(date +%s) - start )) s)"; }

stage "1/5 import the ImageNet weights; the heads and the two convs the file lacks start fresh"
"$NN" import "$WEIGHTS" -o "$OUT/imagenet.nnm" --num-classes 2 \
    --exclude fc,AuxLogits,Mixed_7b.branch3x3dbl_2,Mixed_7c.branch3x3dbl_2 2>&1 | tail -n 1

stage "2/5 fine-tune: convert the photos, train the heads (stage 1), then every layer (stage 2)"
"$NN" finetune "$DATA" --init-from "$OUT/imagenet.nnm" --out "$OUT/run" --stage2-steps "$STAGE2_STEPS" \
    --batch-size 16

stage "3/5 evaluate the fine-tuned model on the validation photos"
"$NN" eval "$OUT/run/final.nnm" --data "$OUT/run/data" -q --csv "$OUT/confusion.csv"

stage "4/5 export the inference-only model (batch norm folded, aux head dropped)"
"$NN" export "$OUT/run/final.nnm" -o "$OUT/frozen.nnm"

stage "5/5 classify photos with it"
"$NN" predict "$OUT/frozen.nnm" --top 2 \
    "$DATA/val/ants/$(ls "$DATA/val/ants" | head -n 1)" "$DATA/val/bees/$(ls "$DATA/val/bees" | head -n 1)"
"$NN" plot "$OUT/run" -o "$OUT/curves.svg"

echo
echo "demo finished in $(( $(date +%s) - start )) s. Everything is in $OUT:"
echo "  imagenet.nnm      the imported start model"
echo "  run/data/         the converted dataset (nn dataset info $OUT/run/data)"
echo "  run/stage1/, run/stage2/   the two training runs: checkpoints, metrics.jsonl, options.json"
echo "  run/final.nnm     the fine-tuned model (nn eval, nn predict)"
echo "  frozen.nnm        its inference-only export"
echo "  confusion.csv     the validation confusion matrix"
echo "  curves.svg        loss and validation accuracy against steps"
