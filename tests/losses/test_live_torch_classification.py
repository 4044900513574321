"""Randomized classification-loss configurations against a live torch (marker ``torch``).

Each test draws random shapes and options (reductions, weights, pos_weight, ignore_index
including a real class and all-ignored batches, label smoothing, spatial and unbatched inputs,
probability targets, hinge powers and margins) and compares value and input gradient in
float64 (rtol 1e-10) with ``torch.nn.functional``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnlearn import losses

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
F = torch.nn.functional

DRAWS = 12
REDUCTIONS = ("none", "mean", "sum")


def _compare(fn: str, args: dict, kwargs: dict, grad: tuple[str, ...], rng, tag: str) -> None:
    """Value and gradients of ``sum(loss * cotangent)`` for fnlearn and torch, float64."""
    tensors = {}
    for name, value in args.items():
        a = np.asarray(value)
        if np.issubdtype(a.dtype, np.floating):
            tensors[name] = torch.tensor(a, dtype=torch.float64, requires_grad=name in grad)
        else:
            tensors[name] = torch.tensor(a.astype(np.int64))
    names = list(args)
    positional = [n for n in ("input", "target") if n in args]
    keywords = [n for n in names if n not in positional]
    t_loss = getattr(F, fn)(*[tensors[n] for n in positional],
                            **{n: tensors[n] for n in keywords}, **kwargs)
    cot = rng.standard_normal(tuple(t_loss.shape))
    t_grads = torch.autograd.grad((t_loss * torch.tensor(cot)).sum(), [tensors[n] for n in grad])

    arrays = {n: jnp.asarray(np.asarray(v)) for n, v in args.items()}

    def f(diff):
        a = {**arrays, **diff}
        return getattr(losses, fn)(*[a[n] for n in positional], **{n: a[n] for n in keywords},
                                   **kwargs)

    @jax.jit  # value and gradients in one compile (the vjp of a jitted f compiles three)
    def value_and_grads(diff, cot):
        loss, vjp = jax.vjp(f, diff)
        return loss, vjp(cot)[0]

    loss, grads = value_and_grads({n: arrays[n] for n in grad}, jnp.asarray(cot))
    msg = f"{fn} {tag} kwargs={kwargs} shapes={ {n: np.shape(v) for n, v in args.items()} }"
    np.testing.assert_allclose(np.asarray(loss), t_loss.detach().numpy(), rtol=1e-10,
                               atol=1e-12, err_msg=msg)
    for n, g in zip(grad, t_grads, strict=True):
        np.testing.assert_allclose(np.asarray(grads[n]), g.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=f"gradient of {n}: {msg}")


def _class_shape(rng):
    """A random input shape with the class axis at 1 (or a 1-D unbatched input)."""
    C = int(rng.integers(2, 6))
    k = int(rng.integers(0, 4))  # 0: unbatched (C,), 1: (N, C), 2-3: spatial
    if k == 0:
        return (C,), C
    return (int(rng.integers(1, 5)), C, *rng.integers(1, 4, k - 1).tolist()), C


def _index_target(rng, shape, C, ignore_index):
    tshape = () if len(shape) == 1 else (shape[0], *shape[2:])
    t = rng.integers(0, C, tshape)
    mask = rng.uniform(size=tshape) < rng.choice([0.0, 0.3, 1.0], p=[0.4, 0.45, 0.15])
    return np.where(mask, ignore_index, t)


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
def test_class_index_targets_match_live_torch(fn):
    rng = np.random.default_rng(1 if fn == "cross_entropy" else 2)
    for draw in range(DRAWS):
        shape, C = _class_shape(rng)
        ignore_index = int(rng.choice([-100, rng.integers(0, C)]))
        args = dict(input=rng.standard_normal(shape) * 2,
                    target=_index_target(rng, shape, C, ignore_index))
        if rng.uniform() < 0.6:
            args["weight"] = rng.uniform(0.1, 2.0, C)
        kwargs = dict(reduction=str(rng.choice(REDUCTIONS)), ignore_index=ignore_index)
        if fn == "cross_entropy" and rng.uniform() < 0.6:
            kwargs["label_smoothing"] = float(rng.choice([rng.uniform(), 1.0]))
        _compare(fn, args, kwargs, ("input",), rng, f"draw {draw}")


def test_class_probability_targets_match_live_torch():
    rng = np.random.default_rng(3)
    for draw in range(DRAWS):
        shape, C = _class_shape(rng)
        p = rng.uniform(size=shape)
        args = dict(input=rng.standard_normal(shape) * 2,
                    target=p / p.sum(axis=0 if len(shape) == 1 else 1, keepdims=True))
        if rng.uniform() < 0.6:
            args["weight"] = rng.uniform(0.1, 2.0, C)
        kwargs = dict(reduction=str(rng.choice(REDUCTIONS)))
        if rng.uniform() < 0.6:
            kwargs["label_smoothing"] = float(rng.uniform())
        _compare("cross_entropy", args, kwargs, ("input", "target"), rng, f"draw {draw}")


def _elementwise_shape(rng):
    return tuple(rng.integers(1, 5, int(rng.integers(1, 4))).tolist())


def _broadcast_weight(rng, shape):
    """A weight that broadcasts to ``shape``: full, last dimension, or a column."""
    kind = rng.integers(0, 3)
    if kind == 0:
        return rng.uniform(0.1, 2.0, shape)
    if kind == 1:
        return rng.uniform(0.1, 2.0, shape[-1:])
    return rng.uniform(0.1, 2.0, (*shape[:-1], 1))


def test_binary_cross_entropy_matches_live_torch():
    rng = np.random.default_rng(4)
    for draw in range(DRAWS):
        shape = _elementwise_shape(rng)
        x = rng.uniform(0.01, 0.99, shape)
        ends = draw % 3 == 0  # some exact 0s and 1s: the -100 clamp and torch's gradient
        if ends:
            x = np.where(rng.uniform(size=shape) < 0.4, rng.integers(0, 2, shape), x)
        args = dict(input=x, target=rng.uniform(0, 1, shape))
        if rng.uniform() < 0.6:
            args["weight"] = _broadcast_weight(rng, shape)
        kwargs = dict(reduction=str(rng.choice(REDUCTIONS)))
        grad = ("input",) if ends else ("input", "target")
        _compare("binary_cross_entropy", args, kwargs, grad, rng, f"draw {draw}")


def test_binary_cross_entropy_with_logits_matches_live_torch():
    rng = np.random.default_rng(5)
    for draw in range(DRAWS):
        shape = _elementwise_shape(rng)
        x = rng.standard_normal(shape) * 4
        if draw % 3 == 0:
            x = np.where(rng.uniform(size=shape) < 0.4, rng.choice([-1e4, 1e4], shape), x)
        args = dict(input=x, target=rng.uniform(0, 1, shape))
        if rng.uniform() < 0.6:
            args["weight"] = _broadcast_weight(rng, shape)
        if rng.uniform() < 0.6:
            args["pos_weight"] = _broadcast_weight(rng, shape)
        kwargs = dict(reduction=str(rng.choice(REDUCTIONS)))
        _compare("binary_cross_entropy_with_logits", args, kwargs, ("input", "target"), rng,
                 f"draw {draw}")


def test_soft_margin_losses_match_live_torch():
    rng = np.random.default_rng(6)
    for draw in range(DRAWS):
        shape = _elementwise_shape(rng)
        x = rng.standard_normal(shape) * 3
        y = rng.choice([-1.0, 1.0], shape[-1:] if draw % 4 == 0 else shape)  # some broadcast
        kwargs = dict(reduction=str(rng.choice(REDUCTIONS)))
        _compare("soft_margin_loss", dict(input=x, target=y), kwargs, ("input",), rng,
                 f"draw {draw}")
        args = dict(input=x, target=rng.integers(0, 2, shape).astype(float))
        if rng.uniform() < 0.6:
            args["weight"] = _broadcast_weight(rng, shape)
        _compare("multilabel_soft_margin_loss", args, kwargs, ("input", "target"), rng,
                 f"draw {draw}")


def test_multi_margin_loss_matches_live_torch():
    rng = np.random.default_rng(7)
    for draw in range(DRAWS):
        C = int(rng.integers(2, 6))
        unbatched = draw % 4 == 0
        shape = (C,) if unbatched else (int(rng.integers(1, 5)), C)
        args = dict(input=rng.standard_normal(shape),
                    target=rng.integers(0, C, () if unbatched else shape[:1]))
        if rng.uniform() < 0.5:
            args["weight"] = rng.uniform(0.1, 2.0, C)
        kwargs = dict(p=int(rng.choice([1, 2])), margin=float(rng.uniform(-0.5, 2.0)),
                      reduction=str(rng.choice(REDUCTIONS)))
        _compare("multi_margin_loss", args, kwargs, ("input",), rng, f"draw {draw}")


def test_multilabel_margin_loss_matches_live_torch():
    rng = np.random.default_rng(8)
    for draw in range(DRAWS):
        C = int(rng.integers(2, 7))
        unbatched = draw % 4 == 0
        shape = (C,) if unbatched else (int(rng.integers(1, 5)), C)
        t = rng.integers(0, C, shape)  # repeated classes are allowed
        stop = rng.integers(0, C + 1, shape[:-1])  # position of the first -1 (C: none)
        t = np.where(np.arange(C) == np.expand_dims(stop, -1), -1, t)
        kwargs = dict(reduction=str(rng.choice(REDUCTIONS)))
        _compare("multilabel_margin_loss", dict(input=rng.standard_normal(shape), target=t),
                 kwargs, ("input",), rng, f"draw {draw}")


def test_torch_behaviours_that_fnlearn_documents():
    # The facts the docstrings rely on, asserted against the installed torch.
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    t = torch.full((4,), -100)
    loss = F.cross_entropy(x, t, weight=torch.rand(5, dtype=torch.float64), label_smoothing=0.2)
    (g,) = torch.autograd.grad(loss, x)
    assert torch.isnan(loss) and not g.any()  # all ignored: nan with zero gradient
    with pytest.raises(IndexError, match="Target 5 is out of bounds"):
        F.cross_entropy(x, torch.tensor([0, 5, 1, 2]))
    # negative smoothing: torch treats it as 0, fnlearn refuses it
    y = torch.tensor([0, 1, 2, 3])
    assert torch.equal(F.cross_entropy(x, y, label_smoothing=-0.5), F.cross_entropy(x, y))
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.cross_entropy(jnp.asarray(x.detach().numpy()), jnp.asarray(y.numpy()),
                             label_smoothing=-0.5)
    # soft_margin_loss overflows in torch where fnlearn's softplus is finite
    assert torch.isinf(F.soft_margin_loss(torch.tensor([-1e4], dtype=torch.float64),
                                          torch.tensor([1.0], dtype=torch.float64)))
