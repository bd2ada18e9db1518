"""SFace (OpenCV Zoo's ``face_recognition_sface_2021dec``) as a native torch network.

The ONNX graph, read node by node: ``(data - 127.5) * 0.0078125``; a 3x3 convolution (3 -> 32), then 13
depthwise-separable blocks (3x3 depthwise convolution, 1x1 pointwise convolution), every convolution
without bias and followed by a batch norm (eps 1e-3) and a PReLU with one slope per channel; four of the
depthwise convolutions have stride 2 (112 -> 7 px); a batch norm (eps 2e-5) on the 1024 x 7 x 7 map,
dropout 0.4, flatten, a linear layer to 128 and a batch norm (eps 2e-5) on the embedding. There are no
residual connections. The output is that batch-normalised 128-D vector, **not** L2-normalised (OpenCV's
``FaceRecognizerSF.match`` normalises before the cosine).

Input convention, the graph's ``data`` tensor as OpenCV's ``FaceRecognizerSF.feature`` fills it: (B, 3, 112,
112) float, raw pixel values 0..255, channels in **RGB** order (``blobFromImage(img, 1, (112, 112), 0,
swapRB=True)`` on OpenCV's BGR crop), the face aligned on the ArcFace five-point template
(:data:`forensic_face.vision.align.ARCFACE_TEMPLATE_112`). The scaling is part of the network, as in the graph.

Weights are loaded from a torch state dict (``forensic_face/training/sface_onnx.py`` makes one from the ONNX file);
nothing here reads ONNX.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

#: The graph's input scaling: ``(x - PIXEL_MEAN) * PIXEL_SCALE`` on raw 0..255 values.
PIXEL_MEAN = 127.5
PIXEL_SCALE = 0.0078125  # 1 / 128
#: (output channels, stride) of the 13 depthwise-separable blocks after the 32-channel stem.
BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


@dataclass(frozen=True)
class SFaceConfig:
    size: int = 112  # input side, pixels (the graph is fixed at 112)
    embed_dim: int = 128  # length of the embedding
    dropout: float = 0.4  # before the embedding layer (training only)

    def as_dict(self) -> dict:
        return asdict(self)


class ConvBNPReLU(nn.Sequential):
    """Convolution without bias, batch norm (eps 1e-3, as in the graph), PReLU with a slope per channel."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)
        self.act = nn.PReLU(cout)


class SeparableBlock(nn.Sequential):
    """A 3x3 depthwise convolution (with the block's stride), then a 1x1 pointwise one."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.dw = ConvBNPReLU(cin, cin, 3, stride=stride, groups=cin)
        self.pw = ConvBNPReLU(cin, cout, 1)


class SFaceNet(nn.Module):
    #: SFace was trained on faces aligned to the five-point ArcFace template.
    alignment = "arcface"
    #: Faces per forward pass in the engine (on the CPU, larger batches of 112-px faces are slower per face).
    inference_batch = 2
    #: On the CPU the engine runs this network as a frozen TorchScript graph in channels-last layout
    #: (``engine.inference.cpu_graph``: about a sixth less time a face, one thread; research/cpu_graph.py).
    cpu_graph = True

    def for_inference(self) -> nn.Module:
        """What the engine runs: an eval copy taking the engine's (B, 1, 112, 112) grey faces in 0..1, given to
        the network as the same grey in each of its three channels, 0..255 (the engine's faces are grey, as
        LFW's are), with every batch norm that follows a convolution or the embedding layer folded into it (the
        same outputs to float rounding, about a sixth less time per face on one CPU thread)."""
        from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

        net = copy.deepcopy(self).eval()
        for m in net.modules():
            if isinstance(m, ConvBNPReLU):
                m.conv, m.bn = fuse_conv_bn_eval(m.conv, m.bn), nn.Identity()
        net.fc, net.embed_bn = fuse_linear_bn_eval(net.fc, net.embed_bn), nn.Identity()
        return _GreyInput(net)

    def __init__(self, config: SFaceConfig = SFaceConfig()) -> None:
        super().__init__()
        if config.size != 112:
            raise ValueError(f"SFace takes 112x112 faces, not {config.size}")
        self.config = config
        self.stem = ConvBNPReLU(3, 32, 3)
        layers, cin = [], 32
        for cout, stride in BLOCKS:
            layers.append(SeparableBlock(cin, cout, stride))
            cin = cout
        self.blocks = nn.Sequential(*layers)
        self.feature_bn = nn.BatchNorm2d(cin, eps=2e-5)
        self.drop = nn.Dropout(config.dropout)
        side = config.size // 16
        self.fc = nn.Linear(cin * side * side, config.embed_dim)
        self.embed_bn = nn.BatchNorm1d(config.embed_dim, eps=2e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, 112, 112) RGB, 0..255 -> embedding (B, embed_dim), not normalised."""
        return self.late(self.early(x, 0), 0)

    def early(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """The stem and the first ``k`` separable blocks: x (B, 3, 112, 112) RGB 0..255 -> their feature map."""
        return self.blocks[:k](self.stem((x - PIXEL_MEAN) * PIXEL_SCALE))

    def late(self, f: torch.Tensor, k: int) -> torch.Tensor:
        """The rest after :meth:`early` ``(x, k)``: blocks[k:], the feature batch norm, the embedding layer."""
        f = self.feature_bn(self.blocks[k:](f))  # (B, 1024, 7, 7)
        return self.embed_bn(self.fc(self.drop(torch.flatten(f, 1))))


def shared_blocks(a: SFaceNet, b: SFaceNet) -> int:
    """How many of the first separable blocks two SFace networks share with their stem (equal tensors: a student
    tuned from SFace with those blocks frozen, stored once); 0 when even the stems differ."""
    def same(m: nn.Module, n: nn.Module) -> bool:
        x, y = m.state_dict(), n.state_dict()
        return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)

    if not same(a.stem, b.stem):
        return 0
    k = 0
    while k < len(a.blocks) and same(a.blocks[k], b.blocks[k]):
        k += 1
    return k


class TwoHeads(nn.Module):
    """Two SFace networks that share their stem and first ``k`` blocks (:func:`shared_blocks`) as one network of
    the engine's grey 0..1 faces (as :meth:`SFaceNet.for_inference` gives): the shared part runs once, then each
    network's own blocks; out, both embeddings side by side (B, 2 x embed_dim), not normalised. The same outputs
    as the two networks one after the other, to float rounding."""

    def __init__(self, a: SFaceNet, b: SFaceNet, k: int) -> None:
        super().__init__()
        if not 0 < k <= len(a.blocks) or shared_blocks(a, b) < k:
            raise ValueError(f"the two networks do not share their stem and first {k} blocks")
        self.a, self.b, self.k = a.for_inference().net, b.for_inference().net, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.a.early(grey_input(x), self.k)
        return torch.cat([self.a.late(f, self.k), self.b.late(f, self.k)], dim=1)


class _GreyInput(nn.Module):
    """A network of RGB 0..255 input, fed the engine's grey 0..1 faces."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(grey_input(x))


def grey_input(x: torch.Tensor) -> torch.Tensor:
    """The engine's (B, 1, S, S) grey faces in 0..1 as the network's RGB 0..255 input: the grey in each channel."""
    return x.expand(-1, 3, -1, -1) * 255.0


def load_sface(path: Path) -> SFaceNet:
    """An SFaceNet in eval mode with the weights of a state-dict file (``torch.load(weights_only=True)``)."""
    net = SFaceNet()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval()
