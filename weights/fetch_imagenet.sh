#!/bin/sh
# Downloads official ImageNet Inception-v3 weights and imports them into nn.
# usage: weights/fetch_imagenet.sh [--source timm|torchvision] [--nn PATH/TO/nn] [--out MODEL.nnm]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
source=timm
nn="$here/../build/bin/nn"
out="$here/inception_v3_imagenet.nnm"
while [ $# -gt 0 ]; do
    case "$1" in
        --source) source=$2; shift 2 ;;
        --nn) nn=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) echo "usage: $0 [--source timm|torchvision] [--nn PATH] [--out MODEL.nnm]" >&2; exit 2 ;;
    esac
done
[ -x "$nn" ] || { echo "$0: $nn not found: run make first, or pass --nn" >&2; exit 1; }
command -v curl >/dev/null || { echo "$0: needs curl (apt-get install curl)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ImageNet class names in the order of the 1000 logits
curl -fL --retry 3 -o "$work/classes.txt" \
    https://raw.githubusercontent.com/pytorch/hub/master/imagenet_classes.txt

case "$source" in
timm)
    curl -fL --retry 3 -o "$work/model.safetensors" \
        https://huggingface.co/timm/inception_v3.tf_in1k/resolve/main/model.safetensors
    ;;
torchvision)
    curl -fL --retry 3 -o "$work/model.pth" \
        https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth
    python3 "$here/torch_to_safetensors.py" "$work/model.pth" "$work/model.safetensors"
    ;;
*) echo "$0: unknown source '$source'" >&2; exit 2 ;;
esac

# Import with the aux head if the checkpoint has one, else initialise it fresh.
if "$nn" import "$work/model.safetensors" -o "$out" --labels "$work/classes.txt" 2>"$work/err"; then
    cat "$work/err" >&2
else
    if grep -q "missing: AuxLogits" "$work/err"; then
        "$nn" import "$work/model.safetensors" -o "$out" --labels "$work/classes.txt" --exclude AuxLogits
    else
        cat "$work/err" >&2
        exit 1
    fi
fi
echo "wrote $out"
