#!/bin/sh
# make bench: nn against PyTorch (../shared/reference/pytorch_inception_v3.py) on the same
# machine, in the same run, with the same batch, size, threads and precision. Prints each
# side's median ms per image, the ratio nn / PyTorch (lower is better for nn), and for bf16 and
# int8 the ratio to nn's own float32 at the same batch. PyTorch runs in both memory layouts
# (NCHW and channels_last) and the faster one is compared; bf16 is torch.autocast. PyTorch's
# reference script has no int8 mode, so int8 rows compare with nn's float32 only.
# usage: tools/scripts/bench.sh [NN_BINARY]   env: THREADS (2), RUNS (5), CONFIGS
# CONFIGS: space-separated mode:batch[:precision], mode infer|train_full|train_last,
# precision f32|bf16|int8 (infer only; default f32).
set -eu
nn=${1:-build/bin/nn}
threads=${THREADS:-2}
runs=${RUNS:-5}
ref=${NN_SHARED:-../shared}/reference/pytorch_inception_v3.py
py=/usr/bin/python3
configs=${CONFIGS:-"infer:1 infer:32 infer:1:bf16 infer:32:bf16 infer:1:int8 infer:32:int8 train_full:32 train_last:32"}

have_torch=1
if ! [ -f "$ref" ] || ! "$py" -c 'import torch, torchvision' 2>/dev/null; then
    have_torch=0
    echo "bench: PyTorch baseline unavailable (needs $ref and: apt-get install python3-torch python3-torchvision)"
fi
echo "bench: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $threads threads, medians of $runs runs"

field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" | tail -n 1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == "-" || a == "-") print "-"; else printf "%.3f", a / b }'; }

# The faster of PyTorch's two layouts at this precision: "ms mib layout".
torch_best() { # mode batch precision
    best=- best_mib=- best_layout=-
    for layout in nchw channels_last; do
        extra=
        [ $layout = channels_last ] && extra=--channels-last
        tout=$("$py" "$ref" "$1" --batch "$2" --threads "$threads" --steps "$runs" --precision "$3" $extra)
        ms=$(echo "$tout" | field ms_per_image)
        if [ "$best" = - ] || awk -v a="$ms" -v b="$best" 'BEGIN { exit !(a < b) }'; then
            best=$ms best_mib=$(echo "$tout" | field peak_rss_mib) best_layout=$layout
        fi
    done
    echo "$best $best_mib $best_layout"
}

printf '%-12s %5s %5s %10s %12s %8s %10s %10s %10s %14s\n' mode batch prec nn_ms/img torch_ms/img nn/torch \
    nn/nn_f32 nn_MiB torch_MiB torch_layout
for c in $configs; do
    mode=${c%%:*}
    rest=${c#*:}
    batch=${rest%%:*}
    prec=f32
    [ "$rest" != "$batch" ] && prec=${rest#*:}
    case $mode in
        infer) args="infer --precision $prec" ;;
        train_full) args="train" ;;
        train_last) args="heads" ;; # stage 1: the heads trained from the bottleneck cache
    esac
    out=$("$nn" bench $args --batch "$batch" --threads "$threads" --runs "$runs")
    echo "$out" | sed 's/^/  # /' >&2
    nn_mib=$(echo "$out" | field peak_rss_mib)
    t_ms=- t_mib=- t_layout=-
    if [ $have_torch = 1 ] && [ "$prec" != int8 ]; then
        tprec=fp32
        [ "$prec" = bf16 ] && tprec=bf16
        set -- $(torch_best "$mode" "$batch" "$tprec")
        t_ms=$1 t_mib=$2 t_layout=$3
    fi
    row() { # label nn_ms
        vs_f32=-
        if [ "$mode" = infer ]; then
            [ "$prec" = f32 ] && eval "f32_$batch=$2"
            vs_f32=$(ratio "$2" "$(eval "echo \${f32_$batch:--}")")
        fi
        printf '%-12s %5s %5s %10s %12s %8s %10s %10s %10s %14s\n' "$1" "$batch" "$prec" "$2" "$t_ms" \
            "$(ratio "$2" "$t_ms")" "$vs_f32" "$nn_mib" "$t_mib" "$t_layout"
    }
    if [ "$mode" = train_last ]; then
        # first epoch: nn runs the trunk once per image to fill the cache; later epochs: heads only
        row heads_first "$(echo "$out" | field ms_per_image_first_epoch)"
        row heads_later "$(echo "$out" | field ms_per_image)"
    else
        row "$mode" "$(echo "$out" | field ms_per_image)"
    fi
done
