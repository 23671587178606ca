"""Export Resemblyzer's GE2E speaker encoder (3-layer LSTM, 256-d) to ONNX for the serving path.

The weights ship in the `resemblyzer` wheel (Apache-2.0) as a torch checkpoint; serving must not import torch, so
this one-off conversion writes `models/weights/speaker/ge2e.onnx` and checks it against Resemblyzer itself.

Needs the training extras plus Resemblyzer without its dependencies (it would pull an unpinned CUDA torch and the
source build of webrtcvad):  pip install '.[train]' && pip install --no-deps resemblyzer==0.1.4
Run: python -m models.training.export_speaker_encoder
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "weights" / "speaker" / "ge2e.onnx"


def export(out: Path = OUT) -> Path:
    import torch
    from resemblyzer import VoiceEncoder

    class Wrapped(torch.nn.Module):
        """Mel frames (batch, frames, 40) -> L2-normalised embeddings (batch, 256), as VoiceEncoder.forward."""

        def __init__(self, enc: VoiceEncoder) -> None:
            super().__init__()
            self.enc = enc

        def forward(self, mels: torch.Tensor) -> torch.Tensor:
            return self.enc(mels)

    enc = VoiceEncoder("cpu", verbose=False).eval()
    model = Wrapped(enc).eval()
    dummy = torch.randn(2, 160, 40)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (dummy,), str(out), input_names=["mels"], output_names=["embeddings"],
                      dynamic_axes={"mels": {0: "batch", 1: "frames"}, "embeddings": {0: "batch"}},
                      opset_version=17, dynamo=False)
    _check(enc, out)
    return out


def _check(enc, out: Path) -> None:
    """The ONNX model must give Resemblyzer's embeddings on real-looking input (cosine > 0.9999)."""
    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(0)
    mels = np.abs(rng.normal(size=(4, 160, 40))).astype(np.float32)
    with torch.no_grad():
        ref = enc(torch.from_numpy(mels)).numpy()
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"mels": mels})[0]
    cos = np.sum(ref * got, axis=1)
    if cos.min() < 0.9999:
        raise SystemExit(f"ONNX export differs from Resemblyzer: cosine {cos.min():.6f}")
    print(f"exported {out} ({out.stat().st_size / 1e6:.1f} MB); min cosine to Resemblyzer {cos.min():.6f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=OUT)
    export(p.parse_args().out)


if __name__ == "__main__":
    main()
