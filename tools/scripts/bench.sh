#!/bin/sh
# make bench: nn against PyTorch (../shared/reference/pytorch_inception_v3.py) on the same
# machine, in the same run, with the same batch, size and threads. Prints each side's
# median ms per image and the ratio nn / PyTorch (lower is better for nn).
# usage: tools/scripts/bench.sh [NN_BINARY]   env: THREADS (2), RUNS (5), CONFIGS
set -eu
nn=${1:-build/bin/nn}
threads=${THREADS:-2}
runs=${RUNS:-5}
ref=${NN_SHARED:-../shared}/reference/pytorch_inception_v3.py
py=/usr/bin/python3
configs=${CONFIGS:-"infer:1 infer:32 train_full:32 train_last:32"}

have_torch=1
if ! [ -f "$ref" ] || ! "$py" -c 'import torch, torchvision' 2>/dev/null; then
    have_torch=0
    echo "bench: PyTorch baseline unavailable (needs $ref and: apt-get install python3-torch python3-torchvision)"
fi

field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" | tail -n 1; }

printf '%-12s %5s %12s %12s %8s %10s %10s\n' mode batch nn_ms/img torch_ms/img ratio nn_MiB torch_MiB
for c in $configs; do
    mode=${c%%:*}
    batch=${c#*:}
    case $mode in
        infer) args="infer" ;;
        train_full) args="train" ;;
        train_last) args="heads" ;; # stage 1: the heads trained from the bottleneck cache
    esac
    out=$("$nn" bench $args --batch "$batch" --threads "$threads" --runs "$runs")
    echo "$out" | sed 's/^/  # /' >&2
    nn_mib=$(echo "$out" | field peak_rss_mib)
    t_ms=- t_mib=-
    if [ $have_torch = 1 ]; then
        tout=$("$py" "$ref" "$mode" --batch "$batch" --threads "$threads" --steps "$runs")
        t_ms=$(echo "$tout" | field ms_per_image)
        t_mib=$(echo "$tout" | field peak_rss_mib)
    fi
    row() { # label nn_ms
        ratio=-
        [ "$t_ms" != - ] && ratio=$(awk -v a="$2" -v b="$t_ms" 'BEGIN { printf "%.3f", a / b }')
        printf '%-12s %5s %12s %12s %8s %10s %10s\n' "$1" "$batch" "$2" "$t_ms" "$ratio" "$nn_mib" "$t_mib"
    }
    if [ "$mode" = train_last ]; then
        # first epoch: nn runs the trunk once per image to fill the cache; later epochs: heads only
        row heads_first "$(echo "$out" | field ms_per_image_first_epoch)"
        row heads_later "$(echo "$out" | field ms_per_image)"
    else
        row "$mode" "$(echo "$out" | field ms_per_image)"
    fi
done
