#!/usr/bin/env python3
"""Converts a PyTorch state dict (.pth) to a float32 safetensors file, keeping names.

usage: torch_to_safetensors.py IN.pth OUT.safetensors
Needs PyTorch (Debian: apt-get install python3-torch). Used by fetch_imagenet.sh for
torchvision's checkpoint; nn reads the result with `nn import`.
"""
import json
import struct
import sys

import torch


def main(src, dst):
    state = torch.load(src, map_location="cpu")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    header, blobs, offset = {}, [], 0
    for name in sorted(state):
        if name.endswith("num_batches_tracked"):
            continue
        data = state[name].detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(state[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
