#!/usr/bin/env python3
"""Convert a Hugging Face folder's pytorch_model.bin into model.safetensors.

graft reads only safetensors (an mmap'able format whose header can be validated before
use; a pickle cannot be read safely). Run once per checkpoint:

    python3 scripts/convert_to_safetensors.py MODEL_DIR

Needs PyTorch (Debian: apt-get install python3-torch). Writes MODEL_DIR/model.safetensors
atomically (temporary file, then rename) and leaves pytorch_model.bin in place. The
format is written directly, so the `safetensors` package is not required.
"""
import json
import os
import struct
import sys

DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "int32": "I32", "int64": "I64"}


def main(folder: str) -> int:
    import torch

    src = os.path.join(folder, "pytorch_model.bin")
    dst = os.path.join(folder, "model.safetensors")
    if not os.path.exists(src):
        print(f"error: {src} does not exist", file=sys.stderr)
        return 1
    state = torch.load(src, map_location="cpu")
    header, chunks, offset = {}, [], 0
    for name, tensor in state.items():
        dtype = DTYPES.get(str(tensor.dtype).replace("torch.", ""))
        if dtype is None:
            print(f"error: tensor {name} has unsupported dtype {tensor.dtype}", file=sys.stderr)
            return 1
        t = tensor.contiguous()
        data = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = f"{dst}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(text)) + text)
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"wrote {dst} ({len(header)} tensors, {offset} bytes)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
