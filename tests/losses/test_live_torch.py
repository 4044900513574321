"""Randomized comparisons against an installed torch for the regression, probabilistic and
embedding losses and for every loss class: values and gradients (float64 rtol 1e-10, float32
rtol 2e-5, bfloat16 loosely), result dtypes, signatures, warnings and errors.

CI installs torch (the ``torch`` extra) and runs ``pytest -m torch``.
"""

from __future__ import annotations

import inspect
import math
import warnings

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from fnlearn import losses as L  # noqa: E402

F = torch.nn.functional
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=2e-5, atol=2e-6),
       "bfloat16": dict(rtol=2e-2, atol=2e-2)}
#: the seeds of each loss's random configurations: the first half in the default run, the
#: second in the exhaustive tier
SEEDS = [pytest.param(range(0, 4), id="seeds0-3"),
         pytest.param(range(4, 8), id="seeds4-7", marks=pytest.mark.exhaustive)]


def _reduction(rng):
    return str(rng.choice(["none", "mean", "sum"]))


def _shape(rng, min_ndim=0):
    ndim = int(rng.integers(min_ndim, 4))
    return tuple(int(s) for s in rng.integers(1, 5, ndim))


def draw(name: str, rng: np.random.Generator):
    """A random configuration: positional arrays (torch's order), keyword options, the names of
    the arguments whose gradients are compared."""
    r = _reduction(rng)
    if name in ("mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss"):
        shape = _shape(rng)
        args = [rng.standard_normal(shape), rng.standard_normal(shape)]
        kw = {"reduction": r}
        if name == "smooth_l1_loss":
            kw["beta"] = float(rng.choice([0.0, 0.5, 1.0, 2.0]))
        if name == "huber_loss":
            kw["delta"] = float(rng.choice([0.3, 1.0, 2.5]))
        if name != "smooth_l1_loss" and rng.random() < 0.5:
            kw["weight"] = rng.uniform(0.1, 2.0, shape)
        return args, kw, (0, 1)
    if name == "kl_div":
        shape = _shape(rng, 1)
        log_target = bool(rng.random() < 0.5)
        t = rng.uniform(0.05, 1.0, shape)
        kw = {"reduction": str(rng.choice(["none", "sum", "batchmean"])), "log_target": log_target}
        return [rng.standard_normal(shape), np.log(t) if log_target else t], kw, (0, 1)
    if name == "poisson_nll_loss":
        shape = _shape(rng)
        log_input = bool(rng.random() < 0.5)
        x = rng.standard_normal(shape) if log_input else rng.uniform(0.0, 3.0, shape)
        kw = {"log_input": log_input, "full": bool(rng.random() < 0.5), "reduction": r,
              "eps": float(rng.choice([1e-8, 1e-3]))}
        return [x, rng.poisson(2.0, shape).astype(np.float64)], kw, (0,)
    if name == "gaussian_nll_loss":
        shape = _shape(rng, 2)
        kind = rng.integers(0, 4)
        vshape = [shape, shape[:-1], shape[:-1] + (1,), (1,) + shape[1:]][kind]
        var = np.where(rng.random(vshape) < 0.2, 1e-9, rng.uniform(0.1, 2.0, vshape))
        kw = {"full": bool(rng.random() < 0.5), "reduction": r, "eps": float(rng.choice([1e-6,
                                                                                         1e-2]))}
        return [rng.standard_normal(shape), rng.standard_normal(shape), var], kw, (0, 1, 2)
    if name == "hinge_embedding_loss":
        shape = _shape(rng)
        y = rng.choice([-1.0, 1.0, 0.0], shape)
        return [rng.standard_normal(shape), y], {"margin": float(rng.uniform(0, 2)),
                                                 "reduction": r}, (0,)
    if name == "margin_ranking_loss":
        shape = _shape(rng, 1)[:1]
        y = rng.choice([-1.0, 1.0], shape)
        return ([rng.standard_normal(shape), rng.standard_normal(shape), y],
                {"margin": float(rng.uniform(-0.5, 1)), "reduction": r}, (0, 1, 2))
    if name == "cosine_embedding_loss":
        n, d = (int(s) for s in rng.integers(1, 6, 2))
        batched = rng.random() < 0.7
        shape = (n, d) if batched else (d,)
        y = rng.choice([-1, 1], (n,) if batched else ())
        return ([rng.standard_normal(shape), rng.standard_normal(shape), y],
                {"margin": float(rng.uniform(-0.5, 0.5)), "reduction": r}, (0, 1))
    if name == "triplet_margin_loss":
        n, d = (int(s) for s in rng.integers(1, 6, 2))
        shape = (n, d) if rng.random() < 0.7 else (d,)
        p = float(rng.choice([1, 2, 3, 1.5, math.inf]))
        kw = {"margin": float(rng.uniform(0.1, 3)), "p": p, "swap": bool(rng.random() < 0.5),
              "reduction": r, "eps": float(rng.choice([1e-6, 0.0]))}
        return [rng.standard_normal(shape) for _ in range(3)], kw, (0, 1, 2)
    if name == "triplet_margin_with_distance_loss":  # the default distance (custom: below)
        n, d = (int(s) for s in rng.integers(1, 6, 2))
        shape = (n, d) if rng.random() < 0.7 else (d,)
        kw = {"margin": float(rng.uniform(0.1, 3)), "swap": bool(rng.random() < 0.5),
              "reduction": r}
        return [rng.standard_normal(shape) for _ in range(3)], kw, (0, 1, 2)
    if name == "pairwise_distance":
        n, d = (int(s) for s in rng.integers(1, 6, 2))
        shapes = [(n, d), (n, d)] if rng.random() < 0.6 else [(n, d), (d,)]
        kw = {"p": float(rng.choice([1, 2, 3, 1.5, 0.5, math.inf])),
              "eps": float(rng.choice([1e-6, 0.0, 0.1])), "keepdim": bool(rng.random() < 0.3)}
        return [rng.standard_normal(s) for s in shapes], kw, (0, 1)
    raise KeyError(name)


MINE = ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div", "poisson_nll_loss",
        "gaussian_nll_loss", "hinge_embedding_loss", "margin_ranking_loss",
        "cosine_embedding_loss", "triplet_margin_loss", "triplet_margin_with_distance_loss",
        "pairwise_distance"]


def _torch_grad(loss, inputs, cot):
    grads = torch.autograd.grad((loss * cot).sum(), inputs, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, grads, strict=True)]


def compare(name, args, kw, grad_idx, dtype):
    tdt = getattr(torch, dtype)
    kw_arrays = {k: v for k, v in kw.items() if isinstance(v, np.ndarray)}
    kw_plain = {k: v for k, v in kw.items() if k not in kw_arrays}
    t_args = [torch.tensor(a, dtype=tdt if a.dtype.kind == "f" else None,
                           requires_grad=i in grad_idx) for i, a in enumerate(args)]
    t_kw = {k: torch.tensor(v, dtype=tdt) for k, v in kw_arrays.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_loss = getattr(F, name)(*t_args, **t_kw, **kw_plain)
    cot = np.random.default_rng(0).standard_normal(tuple(t_loss.shape))
    t_grads = _torch_grad(t_loss, [t_args[i] for i in grad_idx],
                          torch.tensor(cot, dtype=tdt))
    j_args = [jnp.asarray(a, dtype=dtype if a.dtype.kind == "f" else None) for a in args]
    j_kw = {k: jnp.asarray(v, dtype=dtype) for k, v in kw_arrays.items()}

    def f(*diff):
        a = list(j_args)
        for i, d in zip(grad_idx, diff, strict=True):
            a[i] = d
        return getattr(L, name)(*a, **j_kw, **kw_plain)

    @jax.jit  # one compilation per configuration (eager dispatch recompiles op by op)
    def value_and_grads(*diff):
        out, vjp = jax.vjp(f, *diff)
        return out, vjp(jnp.asarray(cot, dtype))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, grads = value_and_grads(*[j_args[i] for i in grad_idx])
    assert out.dtype == jnp.dtype(dtype) and out.shape == tuple(t_loss.shape)
    as_np = lambda t: t.detach().to(torch.float64).numpy()  # noqa: E731
    np.testing.assert_allclose(np.asarray(out, np.float64), as_np(t_loss), **TOL[dtype])
    for i, g, tg in zip(grad_idx, grads, t_grads, strict=True):
        np.testing.assert_allclose(np.asarray(g, np.float64), as_np(tg), **TOL[dtype],
                                   err_msg=f"gradient of argument {i}")


@pytest.mark.parametrize("name", MINE)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("seeds", SEEDS)
def test_random_configurations_match_torch(name, dtype, seeds):
    for seed in seeds:
        rng = np.random.default_rng([seed, MINE.index(name)])
        args, kw, grad_idx = draw(name, rng)
        try:
            compare(name, args, kw, grad_idx, dtype)
        except AssertionError as e:
            raise AssertionError(f"seed {seed}: {kw}\n{e}") from None


@pytest.mark.parametrize("name", MINE)
def test_bfloat16_close_to_torch_and_same_dtype(name):
    rng = np.random.default_rng([99, MINE.index(name)])
    args, kw, grad_idx = draw(name, rng)
    compare(name, args, kw, grad_idx, "bfloat16")


def _params(sig):
    return [(p.name, p.default, p.kind) for p in sig.parameters.values()]


def _torch_params(fn):
    """A torch function's parameters; for a builtin without a signature
    (``F.pairwise_distance``), the one its docstring's first line documents."""
    try:
        return _params(inspect.signature(fn))
    except ValueError:
        line = fn.__doc__.strip().splitlines()[0]
        documented = line[line.index("(") + 1:line.rindex(")")]
        return _params(inspect.signature(eval(f"lambda {documented}: None")))  # noqa: S307


@pytest.mark.parametrize("name", [n for n in L.__all__ if hasattr(F, n)])
def test_function_signatures_are_torchs(name):
    assert _params(inspect.signature(getattr(L, name))) == _torch_params(getattr(F, name))


def _cosine_distance(x, y):
    """1 - cosine similarity over the last dimension (JAX; non-degenerate vectors)."""
    dot = jnp.sum(x * y, axis=-1)
    return 1.0 - dot / (jnp.linalg.norm(x, axis=-1) * jnp.linalg.norm(y, axis=-1))


DISTANCES = {  # torch's distance_function, ours
    "pairwise-p1": (torch.nn.PairwiseDistance(p=1), lambda x, y: L.pairwise_distance(x, y, p=1)),
    "pairwise-inf": (lambda x, y: torch.pairwise_distance(x, y, p=math.inf),
                     lambda x, y: L.pairwise_distance(x, y, p=math.inf)),
    "cosine": (lambda x, y: 1.0 - F.cosine_similarity(x, y, dim=-1), _cosine_distance),
    "squared-l2": (lambda x, y: ((x - y) ** 2).sum(-1),
                   lambda x, y: jnp.sum((x - y) ** 2, axis=-1)),
}


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_triplet_with_a_custom_distance_matches_torch(distance, dtype):
    theirs_fn, ours_fn = DISTANCES[distance]
    tdt = getattr(torch, dtype)
    for seed in range(4):
        rng = np.random.default_rng([seed, 77])
        arrays = [rng.standard_normal((5, 4)) for _ in range(3)]
        kw = {"margin": float(rng.uniform(0.1, 3)), "swap": bool(seed % 2),
              "reduction": str(rng.choice(["none", "mean", "sum"]))}
        t_args = [torch.tensor(a, dtype=tdt, requires_grad=True) for a in arrays]
        expected = F.triplet_margin_with_distance_loss(*t_args, distance_function=theirs_fn,
                                                       **kw)
        cot = rng.standard_normal(tuple(expected.shape))
        t_grads = _torch_grad(expected, t_args, torch.tensor(cot, dtype=tdt))
        out, vjp = jax.vjp(lambda *a, kw=kw: L.triplet_margin_with_distance_loss(
            *a, distance_function=ours_fn, **kw), *(jnp.asarray(a, dtype) for a in arrays))
        grads = vjp(jnp.asarray(cot, dtype))
        assert out.dtype == jnp.dtype(dtype) and out.shape == tuple(expected.shape)
        np.testing.assert_allclose(np.asarray(out, np.float64), expected.detach().numpy(),
                                   **TOL[dtype])
        for g, tg in zip(grads, t_grads, strict=True):
            np.testing.assert_allclose(np.asarray(g, np.float64), tg.numpy(), **TOL[dtype])


@pytest.mark.parametrize("name", [n for n in L.__all__ if n.endswith("Loss")])
def test_class_signatures_are_torchs(name):
    ours, theirs = getattr(L, name), getattr(torch.nn, name)
    assert _params(inspect.signature(ours.__init__)) == _params(
        inspect.signature(theirs.__init__))
    forward = _params(inspect.signature(theirs.forward))[1:]
    call = _params(inspect.signature(ours.__call__))[1:]
    if name == "PoissonNLLLoss":  # torch calls the input log_input, also an option's name
        forward[0] = ("input",) + forward[0][1:]
    assert [p[0] for p in call] == [p[0] for p in forward]


CLASS_CASES = [
    ("MSELoss", {"reduction": "sum"}, lambda r: [r.standard_normal((3, 4))] * 2),
    ("HuberLoss", {"delta": 0.4}, lambda r: [r.standard_normal((3, 4)), r.standard_normal((3, 4))]),
    ("SmoothL1Loss", {"beta": 0.0}, lambda r: [r.standard_normal(5), r.standard_normal(5)]),
    ("KLDivLoss", {"reduction": "batchmean", "log_target": True},
     lambda r: [r.standard_normal((3, 4)), r.standard_normal((3, 4))]),
    ("PoissonNLLLoss", {"log_input": False, "full": True},
     lambda r: [r.uniform(0.1, 2, 6), r.poisson(3.0, 6).astype(float)]),
    ("GaussianNLLLoss", {"full": True},
     lambda r: [r.standard_normal((3, 4)), r.standard_normal((3, 4)), r.uniform(0.1, 1, (3, 1))]),
    ("HingeEmbeddingLoss", {"margin": 0.3},
     lambda r: [r.standard_normal(6), r.choice([-1.0, 1.0], 6)]),
    ("MarginRankingLoss", {"margin": 0.3},
     lambda r: [r.standard_normal(6), r.standard_normal(6), r.choice([-1.0, 1.0], 6)]),
    ("CosineEmbeddingLoss", {"margin": 0.1},
     lambda r: [r.standard_normal((4, 3)), r.standard_normal((4, 3)), r.choice([-1, 1], 4)]),
    ("TripletMarginLoss", {"p": 3.0, "swap": True},
     lambda r: [r.standard_normal((4, 3)) for _ in range(3)]),
    ("TripletMarginWithDistanceLoss", {"margin": 0.7, "swap": True},
     lambda r: [r.standard_normal((4, 3)) for _ in range(3)]),
    ("CrossEntropyLoss", {"weight": np.array([0.2, 1.0, 3.0]), "label_smoothing": 0.1},
     lambda r: [r.standard_normal((4, 3)), r.integers(0, 3, 4)]),
    ("BCEWithLogitsLoss", {"pos_weight": np.array([0.5, 2.0, 1.0])},
     lambda r: [r.standard_normal((4, 3)), r.integers(0, 2, (4, 3)).astype(float)]),
    ("MultiMarginLoss", {"p": 2, "margin": 0.5},
     lambda r: [r.standard_normal((4, 3)), r.integers(0, 3, 4)]),
]


@pytest.mark.parametrize(("name", "options", "make"), CLASS_CASES, ids=[c[0] for c in CLASS_CASES])
def test_classes_match_torch_modules(name, options, make):
    args = make(np.random.default_rng(7))
    t_opts = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    j_opts = {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    expected = getattr(torch.nn, name)(**t_opts)(*(torch.tensor(a) for a in args))
    out = getattr(L, name)(**j_opts)(*(jnp.asarray(a) for a in args))
    np.testing.assert_allclose(np.asarray(out), expected.numpy(), **TOL["float64"])


def _messages(fn, *args, **kw):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fn(*args, **kw)
    return [str(w.message) for w in record]


def _in_jax_terms(message):
    """torch's message with its ``torch.Size([4, 1])`` sizes said as JAX shapes."""
    import re

    def shape(m):
        dims = [d.strip() for d in m.group(1).split(",") if d.strip()]
        return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"

    message = re.sub(r"torch\.Size\(\[([^\]]*)\]\)", shape, message)
    return (message.replace("a target size (", "a target of shape ").replace(
        ") that is different to the input size (", " that is different to the input's shape ")
        .replace("). This will", ". This will").replace("the same size.", "the same shape."))


def test_warnings_are_torchs_in_jax_terms():
    x, y = np.ones((4, 5)), np.ones((4, 1))
    for name in ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"):
        theirs = _messages(getattr(F, name), torch.tensor(x), torch.tensor(y))
        assert "torch.Size([4, 1])" in theirs[0]
        assert _messages(getattr(L, name), jnp.asarray(x), jnp.asarray(y)) == [
            _in_jax_terms(m) for m in theirs]
    p = np.full((2, 3), 1 / 3)
    assert _messages(L.kl_div, jnp.asarray(np.log(p)), jnp.asarray(p)) == _messages(
        F.kl_div, torch.tensor(np.log(p)), torch.tensor(p))
    assert _messages(L.mse_loss, jnp.asarray(p), jnp.asarray(p), size_average=False) == _messages(
        F.mse_loss, torch.tensor(p), torch.tensor(p), size_average=False)


ERRORS = [
    ("smooth_l1_loss", lambda m: (m.ones(3), m.ones(3)), {"beta": -1.0}),
    ("huber_loss", lambda m: (m.ones(3), m.ones(3)), {"delta": 0.0}),
    ("mse_loss", lambda m: (m.ones(3), m.ones(3)), {"reduction": "avg"}),
    ("mse_loss", lambda m: (m.ones(3), m.ones(3)), {"weight": "w(2,)"}),
    ("kl_div", lambda m: (m.ones(3), m.ones(3)), {"reduction": "avg"}),
    ("gaussian_nll_loss", lambda m: (m.ones((3, 4)), m.ones((3, 4)), -1.0), {}),
    ("gaussian_nll_loss", lambda m: (m.ones((3, 4)), m.ones((3, 4)), m.ones(4)), {}),
    ("cosine_embedding_loss", lambda m: (m.ones((4, 3)), m.ones((4, 3)), m.ones((4, 1))), {}),
    ("cosine_embedding_loss", lambda m: (m.ones((4, 3)), m.ones((4, 3)), m.ones(())), {}),
    ("margin_ranking_loss", lambda m: (m.ones(6), m.ones((1, 6)), m.ones(6)), {}),
    ("triplet_margin_loss", lambda m: (m.ones((2, 3)), m.ones((2, 3)), m.ones((2, 3))),
     {"margin": 0.0}),
    ("triplet_margin_loss", lambda m: (m.ones((2, 3)), m.ones(3), m.ones((2, 3))), {}),
]


@pytest.mark.parametrize(("name", "make", "kw"), ERRORS,
                         ids=[f"{e[0]}-{i}" for i, e in enumerate(ERRORS)])
def test_we_raise_where_torch_raises(name, make, kw):
    def fix(kw, m):
        return {k: (m.ones(2) if v == "w(2,)" else v) for k, v in kw.items()}

    with pytest.raises((ValueError, RuntimeError)):
        getattr(F, name)(*make(torch), **fix(kw, torch))
    with pytest.raises((ValueError, TypeError)):
        getattr(L, name)(*make(jnp), **fix(kw, jnp))
