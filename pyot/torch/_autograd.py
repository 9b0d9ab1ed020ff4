"""One autograd Function for every differentiable output of the torch layer.

A solver runs first (on numpy views of the tensors, in the compiled core); the output is then
attached to the graph by :func:`attach` together with a *rule*: a callable that maps the
incoming gradient to the gradients of the inputs. Rules are where the math lives (the
envelope theorem, implicit differentiation); this module only does the plumbing. Backward
passes are computed by the core and numpy, not by torch operations: asking for a second
derivative (``create_graph=True``) raises a clear error instead of returning wrong zeros.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

# rule(grad, inputs, needs_grad) -> one gradient (or None) per input; grad is float64 numpy.
Rule = Callable[[np.ndarray, Sequence[torch.Tensor | None], Sequence[bool]], Sequence]


class _Attached(torch.autograd.Function):
    @staticmethod
    def forward(ctx, rule: Rule, out: np.ndarray, dtype: torch.dtype, *inputs):
        ctx.rule = rule
        ctx.save_for_backward(*inputs)
        device = next(t.device for t in inputs if t is not None)
        return torch.from_numpy(np.array(out, dtype=np.float64)).to(device=device, dtype=dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if torch.is_grad_enabled():  # create_graph=True: a second derivative was asked for
            raise RuntimeError(
                "pyot.torch: second-order gradients are not supported (backward was called "
                "with create_graph=True); the gradients are computed by the compiled core, "
                "not by differentiable torch operations"
            )
        inputs = ctx.saved_tensors
        g = np.ascontiguousarray(grad.detach().to(torch.float64).cpu().numpy())
        grads = ctx.rule(g, inputs, ctx.needs_input_grad[3:])
        return (None, None, None, *grads)


def attach(rule: Rule, out: np.ndarray | float, *inputs: torch.Tensor | None) -> torch.Tensor:
    """``out`` as a tensor (the inputs' dtype and device) whose gradient the rule gives."""
    dtype = next(t.dtype for t in inputs if t is not None)
    return _Attached.apply(rule, out, dtype, *inputs)


def unsupported(message: str) -> Rule:
    """A rule for outputs that have no gradient here: backward raises, never returns zeros."""

    def rule(grad, inputs, needs):
        raise NotImplementedError(message)

    return rule
