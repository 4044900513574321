"""ctc_loss and linear_cross_entropy against a live torch (marker ``torch``): random
configurations, values and gradients (float64 rtol 1e-10, float32 1e-5), and torch's errors.

ctc: padded, concatenated and unbatched targets, any blank, lengths from 0 to the maximum
(impossible alignments included: ``inf`` and torch's ``nan`` gradients, or 0 with
``zero_infinity``), unnormalized log-probabilities. linear_cross_entropy: bias, class weights,
label smoothing, ignore_index (None, -100, a real class), probability targets, K-dimensional
weights, unbatched input, any chunk size, against torch's reference path.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from fnlearn import losses as L  # noqa: E402

F = torch.nn.functional
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-6)}


def _compare(fn, arrays, kw, grad, dtype, rng, ours_kw=None):
    tdt = getattr(torch, dtype)
    t = {n: torch.tensor(a, dtype=tdt if a.dtype.kind == "f" else torch.int64,
                         requires_grad=n in grad) for n, a in arrays.items()}
    names = list(arrays)
    expected = getattr(F, fn)(*[t[n] for n in names[:3 if fn == "linear_cross_entropy" else 4]],
                              **{n: t[n] for n in names[3:] if fn == "linear_cross_entropy"},
                              **kw)
    cot = rng.standard_normal(tuple(expected.shape))
    t_grads = torch.autograd.grad((expected * torch.tensor(cot, dtype=tdt)).sum(),
                                  [t[n] for n in grad])
    j = {n: jnp.asarray(a, dtype=dtype if a.dtype.kind == "f" else None)
         for n, a in arrays.items()}

    def f(diff):
        a = j | diff
        if fn == "ctc_loss":
            return L.ctc_loss(*[a[n] for n in names], **kw)
        return L.linear_cross_entropy(a["input"], a["linear_weight"], a["target"],
                                      **{n: a[n] for n in names[3:]}, **kw, **(ours_kw or {}))

    @jax.jit  # value and gradients in one compile (the vjp of a jitted f compiles three)
    def value_and_grads(diff, cot):
        out, vjp = jax.vjp(f, diff)
        return out, vjp(cot)[0]

    out, grads = value_and_grads({n: j[n] for n in grad}, jnp.asarray(cot, dtype))
    msg = f"{fn} {kw} shapes { {n: a.shape for n, a in arrays.items()} }"
    assert out.dtype == jnp.dtype(dtype)
    np.testing.assert_allclose(np.asarray(out), expected.detach().numpy(), **TOL[dtype],
                               err_msg=msg)
    for n, tg in zip(grad, t_grads, strict=True):
        np.testing.assert_allclose(np.asarray(grads[n]), tg.numpy(), **TOL[dtype],
                                   err_msg=f"gradient of {n}: {msg}")


def _ctc_draw(rng):
    T, N, C, S = (int(rng.integers(1, 13)), int(rng.integers(1, 5)), int(rng.integers(2, 7)),
                  int(rng.integers(0, 6)))
    blank = int(rng.integers(0, C))
    x = rng.standard_normal((T, N, C)) * 2
    if rng.random() < 0.8:
        x = x - np.log(np.exp(x).sum(-1, keepdims=True))
    tl = rng.integers(0, S + 1, N)
    il = np.where(rng.random(N) < 0.7, rng.integers(np.minimum(2 * tl + 1, T), T + 1),
                  rng.integers(0, T + 1, N))
    labels = [c for c in range(C) if c != blank]
    tg = rng.choice(labels, (N, S)) if S else np.zeros((N, 0), np.int64)
    form = rng.choice(["padded", "concatenated", "unbatched"])
    kw = {"blank": blank, "reduction": str(rng.choice(["none", "mean", "sum"])),
          "zero_infinity": bool(rng.random() < 0.4)}
    if form == "unbatched":
        x, tg, il, tl = x[:, 0], tg[0, :tl[0]], il[:1].reshape(()), tl[:1].reshape(())
    elif form == "concatenated":
        tg = np.concatenate([tg[n, :tl[n]] for n in range(N)]).astype(np.int64)
    arrays = {"log_probs": x, "targets": np.asarray(tg, np.int64),
              "input_lengths": np.asarray(il), "target_lengths": np.asarray(tl)}
    return arrays, kw


def _lce_draw(rng):
    n, d, C = int(rng.integers(1, 7)), int(rng.integers(1, 6)), int(rng.integers(1, 9))
    out = (int(rng.integers(1, 3)),) if rng.random() < 0.25 else ()
    batch = () if not out and rng.random() < 0.2 else (n,)
    arrays = {"input": rng.standard_normal((*batch, d)),
              "linear_weight": rng.standard_normal((C, *out, d))}
    kw = {"reduction": str(rng.choice(["none", "mean", "sum"]))}
    probabilities = rng.random() < 0.25
    if probabilities:
        p = rng.uniform(size=(*batch, C, *out))
        arrays["target"] = p / p.sum(axis=len(batch), keepdims=True)
    else:
        t = rng.integers(0, C, (*batch, *out))
        kw["ignore_index"] = [None, -100, int(rng.integers(0, C))][rng.integers(0, 3)]
        if t.size and rng.random() < 0.5:
            t.reshape(-1)[0] = -100 if kw["ignore_index"] is None else kw["ignore_index"]
        arrays["target"] = t
    if rng.random() < 0.5:
        arrays["linear_bias"] = rng.standard_normal((C, *out))
    if rng.random() < 0.5:
        arrays["weight"] = rng.uniform(0.2, 2.0, C)
    if rng.random() < 0.5:
        kw["label_smoothing"] = float(rng.uniform())
    rows = int(rng.integers(1, n + 1))
    grad = ("input", "linear_weight") + (("linear_bias",) if "linear_bias" in arrays else ())
    return arrays, kw, grad, {"options": L.LinearCrossEntropyOptions(batch_chunk_size=rows)}


def _run(fn, dtype, seeds):
    for seed in seeds:
        rng = np.random.default_rng([seed, 31 if fn == "ctc_loss" else 32])
        if fn == "ctc_loss":
            arrays, kw = _ctc_draw(rng)
            _compare(fn, arrays, kw, ("log_probs",), dtype, rng)
        else:
            arrays, kw, grad, ours_kw = _lce_draw(rng)
            _compare(fn, arrays, kw, grad, dtype, rng, ours_kw)


@pytest.mark.parametrize("fn", ["ctc_loss", "linear_cross_entropy"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_random_configurations_match_torch(fn, dtype):
    _run(fn, dtype, range(1))


@pytest.mark.exhaustive
@pytest.mark.parametrize("fn", ["ctc_loss", "linear_cross_entropy"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_random_configurations_match_torch_grid(fn, dtype):
    _run(fn, dtype, range(3, 40))


def test_torch_options_object_is_read():
    rng = np.random.default_rng(5)
    x, a, y = rng.standard_normal((9, 3)), rng.standard_normal((11, 3)), rng.integers(0, 11, 9)
    opts = torch.nn.LinearCrossEntropyOptions(batch_chunk_size=4, chunking_method=None)
    expected = F.linear_cross_entropy(torch.tensor(x), torch.tensor(a), torch.tensor(y),
                                      options=opts)
    out = L.linear_cross_entropy(jnp.asarray(x), jnp.asarray(a), jnp.asarray(y), options=opts)
    np.testing.assert_allclose(np.asarray(out), expected.numpy(), **TOL["float64"])


CTC_ERRORS = [
    dict(input_lengths=[9, 6]), dict(input_lengths=[-1, 6]), dict(target_lengths=[-1, 2]),
    dict(target_lengths=[4, 2]), dict(input_lengths=[8, 6, 1]), dict(target_lengths=[3]),
    dict(blank=5), dict(blank=-1), dict(targets=[1, 2, 2, 3]),
    dict(targets=[[1, 2, 2]]),
]


@pytest.mark.parametrize("change", CTC_ERRORS, ids=[str(c) for c in CTC_ERRORS])
def test_ctc_errors_are_torchs(change):
    rng = np.random.default_rng(0)
    args = {"log_probs": rng.standard_normal((8, 2, 5)), "targets": [[1, 2, 2], [3, 1, 0]],
            "input_lengths": [8, 6], "target_lengths": [3, 2], "blank": 0} | change
    t_args = {k: torch.tensor(v) if isinstance(v, (list, np.ndarray)) else v
              for k, v in args.items()}
    with pytest.raises(RuntimeError) as theirs:
        F.ctc_loss(**t_args)
    with pytest.raises(RuntimeError) as ours:
        L.ctc_loss(**{k: jnp.asarray(v) if isinstance(v, (list, np.ndarray)) else v
                      for k, v in args.items()})
    torch_text = str(theirs.value).split(" (while checking")[0]
    assert str(ours.value).startswith(torch_text.split(" but got")[0]), (str(ours.value),
                                                                           torch_text)
