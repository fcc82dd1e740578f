"""Rank 0 of a two-process run played in one process: DDP's collectives answered by the test, no other rank."""
from vitlab.engine import distributed


def play_rank0(monkeypatch, *, agree=lambda flag: flag, largest=lambda values: values) -> None:
    """`agree` answers Dist.any (the flag every rank gets), `largest` Dist.max_ (the ranks' largest values)."""

    class Rank0(distributed.Dist):
        def any(self, flag, device):
            return agree(flag)

        def max_(self, values, device):
            return largest(values)

        def sum_(self, *tensors):
            pass  # the other rank's share of the loss: none

    monkeypatch.setattr(distributed, "from_env", lambda: Rank0(0, 2))
    monkeypatch.setattr(distributed, "wrap", lambda model, d, device: model)
