"""The layout training runs in: channels-last where oneDNN computes the networks' gradients correctly in it,
the contiguous layout for networks with a layer whose channels-last weight gradient oneDNN gets wrong (a strided
1x1 convolution with fewer than 16 input channels: the tests' narrow recognisers)."""

from __future__ import annotations

import subprocess
import sys

import torch

from forensic_face.training.train import TrainConfig, networks, training_memory_format

CPU = torch.device("cpu")

# One thread, as `forensic-face train --threads 1` or a one-core machine runs: there oneDNN's defective kernel
# corrupts the heap (abort, segfault or a hang) instead of only returning a wrong gradient, so the check runs in
# a process of its own.
_GRADIENTS_CHILD = """
import copy
import torch
from forensic_face.models.nets import Recogniser, RecogniserConfig
from forensic_face.training.train import training_memory_format

torch.set_num_threads(1)
torch.manual_seed(0)
rec = Recogniser(RecogniserConfig(size=32, width=4)).train()
x, probe = torch.rand(64, 1, 32, 32), torch.randn(64, 128)
grads = []
for layout, onednn in ((training_memory_format(torch.device("cpu"), rec), True), (torch.contiguous_format, False)):
    net = copy.deepcopy(rec).to(memory_format=layout)
    torch.manual_seed(1)  # the same dropout
    with torch.backends.mkldnn.flags(enabled=onednn):
        (net(x) * probe).sum().backward()
    grads.append({k: p.grad for k, p in net.named_parameters() if p.dim() == 4})  # the convolutions' weights
errors = {k: float((a - grads[1][k]).norm() / grads[1][k].norm()) for k, a in grads[0].items()}
worst = max(errors, key=errors.get)
print(f"worst relative gradient error: {worst} {errors[worst]:.3g}")
assert errors[worst] < 1e-3, (worst, errors[worst])
"""


def test_narrow_networks_train_contiguous_and_the_shipped_ones_channels_last() -> None:
    narrow = networks(TrainConfig(size=32, ae_width=4, rec_width=4), 715)
    assert training_memory_format(CPU, *narrow) == torch.contiguous_format
    assert training_memory_format(torch.device("cuda"), *narrow) == torch.channels_last  # cuDNN: no such defect
    # the shipped networks keep the layout (and the speed) they were trained in
    assert training_memory_format(CPU, *networks(TrainConfig(), 715)) == torch.channels_last


def test_a_narrow_recogniser_gets_the_reference_gradients_on_one_thread() -> None:
    proc = subprocess.run([sys.executable, "-c", _GRADIENTS_CHILD], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr[-2000:])
