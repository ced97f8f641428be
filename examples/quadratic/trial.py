"""A stand-in trial: a synthetic model with two subnetworks, "a" and "b", and a shared head.

Each subnetwork's parameters change the loss mostly on their own (so the space splits into two
nearly independent parts, as a two-branch network's does), with a weak interaction through the
learning rates. It "trains" for a few epochs, printing Katib StdOut metrics, one line per epoch:

    epoch=3 loss=0.1234 accuracy=0.9383

No dependencies beyond the standard library; runs in well under a second.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

ACTIVATION_PENALTY = {"relu": 0.02, "tanh": 0.05, "gelu": 0.0}


def loss_of(a_lr: float, a_units: int, b_lr: float, b_dropout: float, b_act: str) -> float:
    branch_a = 0.3 * (math.log10(a_lr) - math.log10(3e-3)) ** 2 + 0.2 * ((a_units - 64) / 64) ** 2
    branch_b = 0.3 * (math.log10(b_lr) + 2.0) ** 2 + (b_dropout - 0.2) ** 2
    branch_b += ACTIVATION_PENALTY[b_act]
    coupling = 0.05 * (math.log10(a_lr) - math.log10(b_lr) + 0.5) ** 2
    return 0.05 + branch_a + branch_b + coupling


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--a-lr", type=float, required=True)
    p.add_argument("--a-units", type=int, required=True)
    p.add_argument("--b-lr", type=float, required=True)
    p.add_argument("--b-dropout", type=float, required=True)
    p.add_argument("--b-activation", choices=sorted(ACTIVATION_PENALTY), required=True)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--epoch-seconds", type=float, default=0.1)
    args = p.parse_args(argv)
    final = loss_of(args.a_lr, args.a_units, args.b_lr, args.b_dropout, args.b_activation)
    for epoch in range(1, args.epochs + 1):
        time.sleep(args.epoch_seconds)
        loss = final * (1.0 + 1.0 / epoch)  # improves each epoch towards the final value
        print(f"epoch={epoch} loss={loss:.6f} accuracy={math.exp(-loss):.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
