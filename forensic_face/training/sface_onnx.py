"""Convert OpenCV Zoo's SFace ONNX file into the torch state dict of :class:`forensic_face.models.sface.SFaceNet`.

Reads the graph's initialisers with ``onnx.numpy_helper`` (``onnx`` is a dev dependency, never a run-time
one), checks the file's SHA-256 against the one ``../shared/weights/README.md`` gives, checks each
convolution's stride and groups and the input scaling against the torch definition, maps every tensor to its
torch name (each used once, shapes equal) and writes a plain tensor dict with ``torch.save`` (read back with
``torch.load(weights_only=True)``; safetensors is not installed here).

    .venv/bin/python -m forensic_face.training.sface_onnx OUT.pt [--onnx PATH]

Training starts from it (``forensic-face tune-sface``); the product never reads the ONNX file at run time.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from pathlib import Path

import numpy as np
import torch

from forensic_face.models.sface import PIXEL_MEAN, PIXEL_SCALE, SFaceNet

ONNX_NAME = "face_recognition_sface_2021dec.onnx"
#: SHA-256 of the ONNX file, as ../shared/weights/README.md records it.
ONNX_SHA256 = "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79"
_BN = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_var": "running_var"}


def default_onnx_path() -> Path:
    """The SFace file in the shared weights folder (``$FORENSIC_FACE_WEIGHTS`` or ``../shared/weights``)."""
    from forensic_face.core.errors import ForensicFaceError
    from forensic_face.paths import shared_weights_dir

    folder = shared_weights_dir()
    if folder is None:
        raise ForensicFaceError("no pre-trained weights folder: ../shared/weights not found "
                                "(set FORENSIC_FACE_WEIGHTS)")
    return folder / ONNX_NAME


def torch_name(onnx_name: str) -> str:
    """The state-dict key of an ONNX initialiser (e.g. ``conv_3_dw_batchnorm_gamma`` ->
    ``blocks.1.dw.bn.weight``); raises KeyError for a name outside the graph's scheme."""
    for prefix, target in (("bn1_", "feature_bn."), ("fc1_", "embed_bn.")):
        if onnx_name.startswith(prefix) and onnx_name[len(prefix):] in _BN:
            return target + _BN[onnx_name[len(prefix):]]
    if onnx_name in ("pre_fc1_weight", "pre_fc1_bias"):
        return "fc." + onnx_name.rsplit("_", 1)[1]
    m = re.fullmatch(r"conv_(\d+)_(dw_)?(conv2d_weight|batchnorm_(?:gamma|beta|moving_mean|moving_var)|relu_gamma)",
                     onnx_name)
    if m is None:
        raise KeyError(onnx_name)
    k, dw, what = int(m[1]), bool(m[2]), m[3]
    layer = "stem" if k == 1 else f"blocks.{k - 2}.{'dw' if dw else 'pw'}"
    if what == "conv2d_weight":
        return f"{layer}.conv.weight"
    if what == "relu_gamma":
        return f"{layer}.act.weight"
    return f"{layer}.bn.{_BN[what.removeprefix('batchnorm_')]}"


def _check_graph(graph, inits: dict[str, np.ndarray], net: SFaceNet) -> None:
    """The input scaling and every convolution's stride and groups are those of the torch definition."""
    import onnx

    if not (np.allclose(inits["scalar_op1"], PIXEL_MEAN) and np.allclose(inits["scalar_op2"], PIXEL_SCALE)):
        raise ValueError(f"input scaling {inits['scalar_op1']}, {inits['scalar_op2']} is not the definition's")
    modules = dict(net.named_modules())
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        conv = modules[torch_name(node.input[1]).removesuffix(".weight")]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if (tuple(attrs["strides"]), attrs["group"]) != (conv.stride, conv.groups):
            raise ValueError(f"{node.name or node.output[0]}: strides {attrs['strides']}, group {attrs['group']} "
                             f"differ from the definition's {conv.stride}, {conv.groups}")


def convert(onnx_path: Path) -> dict[str, torch.Tensor]:
    """The SFaceNet state dict (float32) from the ONNX file; raises ValueError on any mismatch."""
    import onnx
    from onnx import numpy_helper

    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    if digest != ONNX_SHA256:
        raise ValueError(f"{onnx_path}: SHA-256 {digest} is not the recorded {ONNX_SHA256}")
    graph = onnx.load(str(onnx_path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    net = SFaceNet()
    _check_graph(graph, inits, net)
    state = net.state_dict()
    filled: set[str] = set()
    for name, value in inits.items():
        if name in ("scalar_op1", "scalar_op2"):
            continue
        key = torch_name(name)
        if key in filled or state[key].numel() != value.size:
            raise ValueError(f"{name} -> {key}: used twice or {value.shape} against {tuple(state[key].shape)}")
        state[key] = torch.from_numpy(value.astype(np.float32).reshape(state[key].shape).copy())
        filled.add(key)
    missing = {k for k in state if not k.endswith("num_batches_tracked")} - filled
    if missing:
        raise ValueError(f"no ONNX tensor for {sorted(missing)}")
    return state


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="the state dict to write (.pt)")
    ap.add_argument("--onnx", type=Path, help="the SFace ONNX file (default: the shared weights folder's)")
    args = ap.parse_args()
    state = convert(args.onnx or default_onnx_path())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, args.out)
    print(f"{args.out}: {len(state)} tensors, {sum(v.numel() for v in state.values()):,} values")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
