"""Adam as ``torch.optim.Adam(..., fused=True)`` computes it, without ``torch._dynamo``.

``torch.optim.Optimizer`` imports ``torch._dynamo`` (and with it the inductor) the first time
any of its methods runs: ``__init__`` adds the parameter groups through a dynamo-disabled method,
and ``step`` calls ``torch._dynamo.graph_break()``. The import costs ~0.9 s of a training job's
~2 s outside its epochs on a 2-core machine (bench/README.md, issue 21), once per job, and the
study runs one process per job. :class:`Adam` keeps the parameter groups and the per-parameter
state itself and calls torch's own functional update, ``torch.optim.adam.adam(..., fused=True)``:
the same kernel on the same tensors, so the same numbers bit for bit (tests/test_optim.py), and a
``state_dict`` laid out as ``torch.optim.Adam``'s, so each loads the other's.

Groups may set their own ``lr`` (discriminative fine-tuning) and the other options torch's
update takes as they are (betas, eps, weight decay, maximize); ``amsgrad``, which needs state
this class does not keep, is refused. A job that compiles its model (``training.speed.compile``)
imports ``torch._dynamo`` anyway; the update is the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.optim.adam import adam

#: The hyperparameters ``torch.optim.Adam(lr=..., fused=True)`` stores in each group, in its
#: order; tests/test_optim.py checks them against torch's own.
_DEFAULTS: dict[str, Any] = {
    "lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0, "amsgrad": False,
    "maximize": False, "foreach": None, "capturable": False, "differentiable": False,
    "fused": True, "decoupled_weight_decay": False,
}


class Adam:
    """``torch.optim.Adam(params, lr=lr, fused=True)``: its update, state and ``state_dict``.

    ``params`` is an iterable of tensors or of group dicts (``{"params": [...], "lr": ...}``).
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]], lr: float):
        groups = list(params)
        if not groups:
            raise ValueError("Adam got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.defaults = _DEFAULTS | {"lr": lr}
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        seen: set[int] = set()
        for group in groups:
            params_ = list(group["params"])
            for p in params_:
                if id(p) in seen:
                    raise ValueError("a parameter appears in more than one group")
                if not (p.is_floating_point() and p.device.type in ("cpu", "cuda")):
                    raise ValueError(f"fused Adam needs float CPU or CUDA tensors, got a "
                                     f"{p.dtype} tensor on {p.device}")
                seen.add(id(p))
            unknown = set(group) - set(_DEFAULTS) - {"params"}
            if unknown:
                raise ValueError(f"unsupported Adam option(s) {sorted(unknown)}")
            if group.get("amsgrad"):
                raise ValueError("unsupported Adam option amsgrad=True (its running maximum "
                                 "of the second moment is not kept)")
            self.param_groups.append(self.defaults | group | {"params": params_})

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.get(p)
                if state is None:  # as torch's _init_group: a float32 step on the parameter's
                    # device (fused), zeroed moments
                    state = self.state[p] = {
                        "step": torch.zeros((), dtype=torch.float32, device=p.device),
                        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                        "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                    }
                params.append(p)
                grads.append(p.grad)
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                steps.append(state["step"])
            if not params:
                continue
            beta1, beta2 = group["betas"]
            adam(params, grads, exp_avgs, exp_avg_sqs, [], steps,
                 foreach=group["foreach"], capturable=group["capturable"],
                 differentiable=group["differentiable"], fused=group["fused"],
                 grad_scale=None, found_inf=None, has_complex=False,
                 decoupled_weight_decay=group["decoupled_weight_decay"],
                 amsgrad=group["amsgrad"], beta1=beta1, beta2=beta2, lr=group["lr"],
                 weight_decay=group["weight_decay"], eps=group["eps"],
                 maximize=group["maximize"])

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim.Adam.state_dict()``'s layout: parameters numbered across groups."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({k: v for k, v in group.items() if k != "params"} | {"params": ids})
        return {"state": {index[id(p)]: dict(s) for p, s in self.state.items()},
                "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state from :meth:`state_dict` or from ``torch.optim.Adam``'s."""
        saved = state_dict["param_groups"]
        if [len(g["params"]) for g in saved] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError("loaded optimiser state has groups of other sizes than this "
                             "optimiser's")
        self.state = {}
        groups = []
        for s, g in zip(saved, self.param_groups, strict=True):
            for i, p in zip(s["params"], g["params"], strict=True):
                if i in state_dict["state"]:
                    self.state[p] = {
                        # as torch: the step stays float32 (fused), the moments take the
                        # parameter's dtype; all go to the parameter's device
                        k: v.to(device=p.device, dtype=(torch.float32 if k == "step"
                                                        else p.dtype))
                        for k, v in state_dict["state"][i].items()}
            groups.append(self.defaults | {k: v for k, v in s.items() if k != "params"}
                          | {"params": g["params"]})
        self.param_groups = groups
