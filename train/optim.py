"""``RowAdam``: Adam for embedding tables whose gradients are sparse (a batch's rows).

It computes what ``torch.optim.SparseAdam`` computes (the moments and the weights of
only the rows a step used, with the step count's bias correction), with dense ops on
the gathered rows: ``SparseAdam`` builds several sparse tensors per table per step, and
measured 3-4x slower on a 5M-rating data set (8,192-row batches, one core).
"""

from __future__ import annotations

import torch


class RowAdam(torch.optim.Optimizer):
    """Lazy Adam: a step updates the rows present in each parameter's sparse gradient."""

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if not p.grad.is_sparse:
                    raise RuntimeError("RowAdam takes sparse gradients (nn.Embedding(sparse=True))")
                grad = p.grad.coalesce()
                rows, values = grad.indices()[0], grad.values()
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                m = state["exp_avg"].index_select(0, rows)
                v = state["exp_avg_sq"].index_select(0, rows)
                m.lerp_(values, 1 - beta1)
                v.mul_(beta2).addcmul_(values, values, value=1 - beta2)
                state["exp_avg"].index_copy_(0, rows, m)
                state["exp_avg_sq"].index_copy_(0, rows, v)
                step_size = group["lr"] * (1 - beta2**t) ** 0.5 / (1 - beta1**t)
                p.index_add_(0, rows, m.div_(v.sqrt_().add_(group["eps"])), alpha=-step_size)
        return loss
