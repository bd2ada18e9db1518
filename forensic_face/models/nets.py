"""The two networks of DESIGN.md, small enough to train on two CPU cores.

``FusionAutoencoder``: a convolutional encoder (conv, ReLU, max-pooling) of the degraded face; an
audio encoder of the LBRP + prosody vector; the bottleneck ``z = ReLU(W_b [h; a] + b_b)`` applied
at every position of the 8x8 visual feature map (a 1x1 convolution over the visual features
concatenated with the audio code broadcast to each position, so the audio can steer every part
of the face); optionally a few residual blocks on ``z`` at 8x8 (``AEConfig.blocks``: depth where it
is cheapest); a decoder of transposed convolutions with ReLU, fed also by the encoder's feature
maps at each scale (U-Net skips keep the geometry of the input); a final convolution and a
sigmoid. When no audio is available a learned "no audio" code takes the place of ``a``.

``Recogniser``: a residual CNN ``f`` and a linear embedding ``e = W f(x) + b`` (batch-normalised,
128-D); compared by cosine similarity. Trained with an additive angular margin (ArcFace) soft-max
over training identities and by distillation from a teacher embedding.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - torch's own convention


@dataclass(frozen=True)
class AEConfig:
    size: int = 64  # input and output side, pixels (grey)
    width: int = 24  # channels of the first encoder level; doubles per level
    audio_dim: int = 715  # length of the audio vector (LBRP 708 + prosody 7)
    audio_code: int = 64  # length of the audio code a
    residual: bool = False  # add the input's logit before the final sigmoid (learn the correction only)
    blocks: int = 0  # residual blocks (conv, ReLU, conv, + input, ReLU) on the fused 8x8 code, before the decoder

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RecogniserConfig:
    size: int = 64
    width: int = 32  # channels of the first stage; stages use 1x, 2x, 4x, 8x
    embed_dim: int = 128
    depth: int = 1  # residual blocks per stage

    def as_dict(self) -> dict:
        return asdict(self)


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))


class _PlainBlock(nn.Module):
    """A residual block without normalisation (the autoencoder has none): ReLU(x + conv(ReLU(conv(x)))).

    The second convolution starts at zero, so a new block starts as the identity on the (non-negative)
    code: training starts from the network without it."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.c2 = nn.Conv2d(ch, ch, 3, padding=1)
        nn.init.zeros_(self.c2.weight)
        nn.init.zeros_(self.c2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.c2(F.relu(self.c1(x))))


class AudioEncoder(nn.Module):
    """Audio vector (LBRP + prosody) -> code a, with a learned code for "no audio"."""

    def __init__(self, audio_dim: int, code: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(audio_dim, 128), nn.ReLU(inplace=True), nn.Linear(128, code),
                                 nn.ReLU(inplace=True))
        self.no_audio = nn.Parameter(torch.zeros(code))

    def forward(self, audio: torch.Tensor | None, present: torch.Tensor | None, batch: int) -> torch.Tensor:
        """``audio`` (B, audio_dim) or None; ``present`` (B,) bool (rows without audio use the learned code)."""
        absent = self.no_audio.unsqueeze(0).expand(batch, -1)
        if audio is None:
            return absent
        code = self.net(audio)
        if present is None:
            return code
        return torch.where(present.unsqueeze(1), code, absent)


class FusionAutoencoder(nn.Module):
    #: The autoencoder was trained on faces aligned by their eyes (AlignSpec mode "eyes").
    alignment = "eyes"

    def __init__(self, config: AEConfig = AEConfig()) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.enc1 = _conv(1, w)  # 64
        self.enc2 = nn.Sequential(_conv(w, 2 * w), _conv(2 * w, 2 * w))  # 32
        self.enc3 = nn.Sequential(_conv(2 * w, 4 * w), _conv(4 * w, 4 * w))  # 16
        self.enc4 = nn.Sequential(_conv(4 * w, 8 * w), _conv(8 * w, 8 * w))  # 8
        self.pool = nn.MaxPool2d(2)
        self.audio = AudioEncoder(config.audio_dim, config.audio_code)
        self.fuse = nn.Sequential(nn.Conv2d(8 * w + config.audio_code, 8 * w, 1), nn.ReLU(inplace=True))
        self.blocks = nn.ModuleList(_PlainBlock(8 * w) for _ in range(config.blocks))
        self.up3 = nn.Sequential(nn.ConvTranspose2d(8 * w, 4 * w, 4, stride=2, padding=1), nn.ReLU(inplace=True))
        self.dec3 = _conv(8 * w, 4 * w)  # 16
        self.up2 = nn.Sequential(nn.ConvTranspose2d(4 * w, 2 * w, 4, stride=2, padding=1), nn.ReLU(inplace=True))
        self.dec2 = _conv(4 * w, 2 * w)  # 32
        self.up1 = nn.Sequential(nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1), nn.ReLU(inplace=True))
        self.dec1 = _conv(2 * w, w)  # 64
        self.out = nn.Conv2d(w, 1, 3, padding=1)

    def forward(self, x: torch.Tensor, audio: torch.Tensor | None = None,
                present: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, 1, S, S) in [0, 1]; audio (B, audio_dim) or None -> reconstruction (B, 1, S, S) in [0, 1]."""
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        h = self.enc4(self.pool(e3))
        a = self.audio(audio, present, x.shape[0])
        z = self.fuse(torch.cat([h, a[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])], dim=1))
        for block in self.blocks:
            z = block(z)
        d3 = self.dec3(torch.cat([self.up3(z), e3], dim=1))
        d2 = self.dec2(torch.cat([self.up2(d3), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        out = self.out(d1)  # (B, 1, S, S)
        if self.config.residual:
            out = out + torch.logit(x.clamp(1 / 255, 254 / 255))
        return torch.sigmoid(out)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.skip = None
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.b1(self.c1(x)), inplace=True)
        y = self.b2(self.c2(y))
        return F.relu(y + (x if self.skip is None else self.skip(x)), inplace=True)


class Recogniser(nn.Module):
    #: How the faces it embeds are aligned (vision.align.AlignSpec.mode); every recogniser says so.
    alignment = "eyes"

    def for_inference(self) -> nn.Module:
        """What the engine runs: a copy taking (B, 1, S, S) grey faces in 0..1 (this network's own input),
        its batch norms folded (:func:`fold_batch_norms`)."""
        return fold_batch_norms(self)

    def __init__(self, config: RecogniserConfig = RecogniserConfig()) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.stem = nn.Sequential(nn.Conv2d(1, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w),
                                  nn.ReLU(inplace=True))  # S/2
        blocks = []
        for cin, cout, stride in ((w, w, 1), (w, 2 * w, 2), (2 * w, 4 * w, 2), (4 * w, 8 * w, 2)):  # S/16
            blocks += [_Block(cin, cout, stride)] + [_Block(cout, cout, 1) for _ in range(config.depth - 1)]
        self.stages = nn.Sequential(*blocks)
        side = config.size // 16
        self.drop = nn.Dropout(0.2)
        self.embed = nn.Linear(8 * w * side * side, config.embed_dim)  # e = W f(x) + b
        self.bn = nn.BatchNorm1d(config.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 1, S, S) in [0, 1] -> embedding (B, embed_dim), not normalised."""
        f = self.stages(self.stem((x - 0.5) / 0.25))
        return self.bn(self.embed(self.drop(torch.flatten(f, 1))))


def fold_batch_norms(rec: Recogniser) -> Recogniser:
    """An inference copy of a recogniser with each batch norm folded into the convolution or linear layer
    before it (its running statistics and affine terms absorbed into their weights and biases): the
    same embedding up to float rounding, in fewer operations per face. The copy is in eval mode and
    is not for training; ``rec`` is left as it is."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

    fast = copy.deepcopy(rec).eval()
    fast.stem = nn.Sequential(fuse_conv_bn_eval(fast.stem[0], fast.stem[1]), fast.stem[2])
    for block in fast.stages:
        block.c1, block.b1 = fuse_conv_bn_eval(block.c1, block.b1), nn.Identity()
        block.c2, block.b2 = fuse_conv_bn_eval(block.c2, block.b2), nn.Identity()
        if block.skip is not None:
            block.skip = fuse_conv_bn_eval(block.skip[0], block.skip[1])
    fast.embed, fast.bn = fuse_linear_bn_eval(fast.embed, fast.bn), nn.Identity()
    return fast


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
