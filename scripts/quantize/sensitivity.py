"""How much quantization changes a model, measured on held-out TRAINING images (never the evaluation sets),
so that the layers left in float are chosen without looking at the scores they are judged by.

    # output agreement of int8 candidates with the fp32 model
    python scripts/quantize/sensitivity.py outputs --fp32 M.onnx --calib .cache/quantize/heldout A.onnx B.onnx
    # per-tensor quantization noise of one QDQ model (ORT's qdq_loss_debug), worst first
    python scripts/quantize/sensitivity.py layers --fp32 M.onnx --calib .cache/quantize/heldout --images 12 A.onnx

`outputs` reports, per class, the mean |score difference| over the anchors that either model scores at
0.05 or more, the share of anchors on which the two disagree about conf 0.25, and the mean box
difference (px) where fp32 scores 0.25 or more. `layers` reports, for every quantized activation, the
SQNR (dB) of quantizing it alone (qdq: the float activation vs its own quantize-dequantize) and of the
whole int8 model up to that point (xmodel).
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).parent))
from quantize import LetterboxedImages  # noqa: E402


def session(path):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def outputs(args):
    ref = session(args.fp32)
    cands = [(Path(m).name, session(m)) for m in args.models]
    reader = LetterboxedImages(args.calib, ref.get_inputs()[0].name)
    stats = {name: {"dscore": [], "flip": [], "dbox": []} for name, _ in cands}
    while (feeds := reader.get_next()) is not None:
        y = ref.run(None, feeds)[0][0]  # [4 + nc, N]
        for name, s in cands:
            q = s.run(None, feeds)[0][0]
            st = stats[name]
            sy, sq = y[4:], q[4:]
            live = np.maximum(sy, sq) >= 0.05
            st["dscore"].append([np.abs(sy[c] - sq[c])[live[c]] for c in range(sy.shape[0])])
            st["flip"].append([np.mean((sy[c] >= 0.25) != (sq[c] >= 0.25)) for c in range(sy.shape[0])])
            hit = sy.max(0) >= 0.25
            st["dbox"].append(np.abs(y[:4, hit] - q[:4, hit]).ravel())
    nc = ref.get_outputs()[0].shape[1] - 4 if isinstance(ref.get_outputs()[0].shape[1], int) else 2
    print(f"{reader.n} held-out images; per class: mean |Δscore| (anchors scored ≥ 0.05), conf-0.25 flips per 10k anchors; mean |Δbox| px")
    for name, st in stats.items():
        parts = []
        for c in range(nc):
            d = np.concatenate([x[c] for x in st["dscore"]])
            flips = np.mean([x[c] for x in st["flip"]]) * 1e4
            parts.append(f"class {c}: {d.mean():.4f} / {flips:.2f}")
        box = np.concatenate(st["dbox"])
        print(f"  {name:28s} {'; '.join(parts)}; box {box.mean() if box.size else float('nan'):.2f} px")


def layers(args):
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    qdq = args.models[0]
    name = session(args.fp32).get_inputs()[0].name
    with tempfile.TemporaryDirectory(prefix="sensitivity.") as tmp:
        acts = {}
        for tag, model in (("float", args.fp32), ("qdq", qdq)):
            aug = str(Path(tmp) / f"{tag}.onnx")
            modify_model_output_intermediate_tensors(model, aug)
            reader = LetterboxedImages(args.calib, name)
            reader.set_range(0, args.images)
            acts[tag] = collect_activations(aug, reader)
        matching = create_activation_matching(acts["qdq"], acts["float"])
        errors = compute_activation_error(matching)
    rows = sorted(
        ((t, e.get("qdq_err", float("nan")), e.get("xmodel_err", float("nan"))) for t, e in errors.items()),
        key=lambda r: r[1],
    )
    print(f"{args.images} held-out images; {len(rows)} quantized activations, lowest qdq SQNR first (dB)")
    for t, q, x in rows[: args.top]:
        print(f"  qdq {q:6.2f}  xmodel {x:6.2f}  {t}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["outputs", "layers"])
    ap.add_argument("models", nargs="+", help="int8 candidates")
    ap.add_argument("--fp32", required=True)
    ap.add_argument("--calib", required=True, help="prefix of a held-out calibration-images.ts sample")
    ap.add_argument("--images", type=int, default=12, help="layers: images to compare (all tensors are kept in memory)")
    ap.add_argument("--top", type=int, default=25, help="layers: rows to print")
    args = ap.parse_args()
    (outputs if args.mode == "outputs" else layers)(args)


if __name__ == "__main__":
    main()
