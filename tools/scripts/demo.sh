#!/bin/sh
# `make demo`: nn's main job end to end. With the real photos and weights
# (../shared) it runs on them; without them, or with DEMO=synthetic, on a
# generated set that needs no download (see run_synthetic below).
#
# Real photos: a pretrained
# ImageNet Inception-v3 trunk is fine-tuned to tell ants from bees
# (hymenoptera: 244 training and 153 validation photos), evaluated,
# exported for inference and used to classify photos.
#
#   tools/scripts/demo.sh NN DATA WEIGHTS OUT
#   DEMO=synthetic|real   force a mode (default: real when DATA and WEIGHTS exist)
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

MODE=${DEMO:-}
if [ -z "$MODE" ]; then
    if [ -e "$DATA" ] && [ -e "$WEIGHTS" ]; then MODE=real; else MODE=synthetic; fi
fi
case "$MODE" in
real)
    for f in "$DATA" "$WEIGHTS"; do
        if [ ! -e "$f" ]; then
            echo "demo: $f not found (the real-photo demo needs ../shared: set DEMO_DATA and DEMO_WEIGHTS," >&2
            echo "      or run DEMO=synthetic)" >&2
            exit 1
        fi
    done ;;
synthetic) ;;
*) echo "demo: DEMO must be real or synthetic, not '$MODE'" >&2; exit 2 ;;
esac
start=$(date +%s)
rm -rf "$OUT"
mkdir -p "$OUT"
stage() { echo; echo "== $* ($(( $(date +%s) - start )) s)"; }

# No download: 3 classes of generated photos that differ by colour, a model
# with fresh weights at a small input size (107 px: Inception-v3's grid still
# fits), and short stages. Validation accuracy reaches 1.0 in seconds; the
# point is the path, not the task.
run_synthetic() {
    echo "demo: synthetic mode (no ../shared needed; DEMO=real runs on real photos)"
    stage "1/6 generate photos: 3 classes that differ by colour, 60 training + 20 validation each"
    "$NN" synth "$OUT/photos" --classes 3 --train 60 --val 20 --size 96 --seed 1

    stage "2/6 a model with fresh weights (107x107 input, 3 classes)"
    "$NN" init -o "$OUT/init.nnm" --num-classes 3 --image-size 107 --seed 1

    stage "3/6 fine-tune: convert the photos, train the heads (stage 1), then every layer (stage 2)"
    "$NN" finetune "$OUT/photos" --init-from "$OUT/init.nnm" --out "$OUT/run" --stage1-steps 60 \
        --stage2-steps "${DEMO_STAGE2_STEPS:-20}" --batch-size 16

    stage "4/6 evaluate the fine-tuned model on the validation photos"
    "$NN" eval "$OUT/run/final.nnm" --data "$OUT/run/data" -q --csv "$OUT/confusion.csv"

    stage "5/6 export the inference-only model (batch norm folded, aux head dropped)"
    "$NN" export "$OUT/run/final.nnm" -o "$OUT/frozen.nnm"

    stage "6/6 classify two generated photos with it"
    "$NN" predict "$OUT/frozen.nnm" --top 2 \
        "$OUT/photos/validation/class0/img000.jpg" "$OUT/photos/validation/class2/img000.jpg"
    "$NN" plot "$OUT/run" -o "$OUT/curves.svg"

    echo
    echo "demo (synthetic) finished in $(( $(date +%s) - start )) s. Everything is in $OUT:"
    echo "  photos/           the generated photos (train/ and validation/, one folder per class)"
    echo "  init.nnm          the fresh start model"
    echo "  run/data/         the converted dataset (nn dataset info $OUT/run/data)"
    echo "  run/stage1/, run/stage2/   the two training runs: checkpoints, metrics.jsonl, options.json"
    echo "  run/final.nnm     the fine-tuned model (nn eval, nn predict)"
    echo "  frozen.nnm        its inference-only export"
    echo "  confusion.csv     the validation confusion matrix"
    echo "  curves.svg        loss and validation accuracy against steps"
    echo "For real photos and ImageNet weights: make demo DEMO_DATA=DIR DEMO_WEIGHTS=FILE"
}
if [ "$MODE" = synthetic ]; then
    run_synthetic
    exit 0
fi

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
