"""Live randomized comparisons of fnlearn.schedules and reduce_lr_on_plateau against an
installed torch (``pytest -m torch``): random arguments for every scheduler, torch stepped once
per optimizer step, float64, rtol 1e-10."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from torch.optim import lr_scheduler as S  # noqa: E402
from torch.optim.swa_utils import SWALR  # noqa: E402

from fnlearn import schedules as s  # noqa: E402
from fnlearn.optim import reduce_lr_on_plateau  # noqa: E402

pytestmark = pytest.mark.torch

LR = 0.1


def _torch_lrs(build, steps, optimizer="sgd"):
    """torch's lr (and momentum / beta1) during each of ``steps`` optimizer steps."""
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)([p], lr=LR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        sched = build(opt)
        lrs, moms = [], []
        for k in range(steps):
            g = opt.param_groups[0]
            lrs.append(float(g["lr"]))
            moms.append(float(g["betas"][0] if optimizer == "adam" else g["momentum"]))
            p.grad = torch.zeros_like(p)
            opt.step()
            if k < steps - 1:
                sched.step()
    return np.array(lrs), np.array(moms)


def _random_cases(rng):
    """(id, torch builder, fnlearn schedule, momentum schedule or None, steps, optimizer)."""
    u, i = rng.uniform, lambda a, b: int(rng.integers(a, b + 1))
    cases = []

    def add(name, build, fn, steps=40, momentum=None, optimizer="sgd"):
        cases.append((name, build, fn, momentum, steps, optimizer))

    a, g = i(1, 6), u(0.1, 1.0)
    add("step_lr", lambda o: S.StepLR(o, a, g), s.step_lr(LR, a, g))
    ms, g2 = [i(0, 30) for _ in range(i(1, 5))], u(0.1, 1.0)
    add("multi_step_lr", lambda o: S.MultiStepLR(o, ms, g2), s.multi_step_lr(LR, ms, g2))
    f, t = u(0.0, 1.0), i(1, 10)
    add("constant_lr", lambda o: S.ConstantLR(o, f, t), s.constant_lr(LR, f, t))
    sf, ef, t2 = u(0.01, 1.0), u(0.0, 1.0), i(1, 15)
    add("linear_lr", lambda o: S.LinearLR(o, sf, ef, t2), s.linear_lr(LR, sf, ef, t2))
    g3 = u(0.8, 1.0)
    add("exponential_lr", lambda o: S.ExponentialLR(o, g3), s.exponential_lr(LR, g3))
    t3, pw = i(1, 15), u(0.0, 3.0)
    add("polynomial_lr", lambda o: S.PolynomialLR(o, t3, pw), s.polynomial_lr(LR, t3, pw))
    tm, em = i(1, 15), u(0.0, 0.05)
    add("cosine_annealing_lr", lambda o: S.CosineAnnealingLR(o, tm, em),
        s.cosine_annealing_lr(LR, tm, em), steps=60)
    t0, tmul, em2 = i(1, 6), i(1, 3), u(0.0, 0.05)
    add("warm_restarts", lambda o: S.CosineAnnealingWarmRestarts(o, t0, tmul, em2),
        s.cosine_annealing_warm_restarts(LR, t0, tmul, em2), steps=60)
    lo, hi = u(0.001, 0.05), u(0.05, 1.0)
    up, down = i(1, 6), (None if rng.random() < 0.3 else i(0, 6))
    mode, cg = str(rng.choice(["triangular", "triangular2", "exp_range"])), u(0.9, 1.0)
    bm, mm = u(0.5, 0.85), u(0.85, 0.99)
    opt_name = "adam" if rng.random() < 0.5 else "sgd"
    add("cyclic_lr", lambda o: S.CyclicLR(o, lo, hi, up, down, mode, cg, base_momentum=bm,
                                          max_momentum=mm),
        s.cyclic_lr(lo, hi, up, down, mode, cg), steps=50,
        momentum=s.cyclic_momentum(bm, mm, up, down, mode, cg), optimizer=opt_name)
    total = i(10, 60)
    pct = u(0.1, 0.9)
    while float(pct * total) - 1 == 0 or float(2 * pct * total) - 2 == total - 1:
        pct = u(0.1, 0.9)
    anneal = str(rng.choice(["cos", "linear"]))
    three, div, fdiv, mx = bool(rng.random() < 0.5), u(2.0, 50.0), u(10.0, 1e4), u(0.01, 1.0)
    add("one_cycle_lr", lambda o: S.OneCycleLR(o, mx, total_steps=total, pct_start=pct,
                                               anneal_strategy=anneal, base_momentum=bm,
                                               max_momentum=mm, div_factor=div,
                                               final_div_factor=fdiv, three_phase=three),
        s.one_cycle_lr(mx, total_steps=total, pct_start=pct, anneal_strategy=anneal,
                       div_factor=div, final_div_factor=fdiv, three_phase=three),
        steps=total + 1, optimizer=opt_name,
        momentum=s.one_cycle_momentum(total_steps=total, pct_start=pct, anneal_strategy=anneal,
                                      base_momentum=bm, max_momentum=mm, three_phase=three))
    la, lb = u(0.9, 1.0), u(0.0, 0.2)
    add("lambda_lr", lambda o: S.LambdaLR(o, lambda k: la**k / (1.0 + lb * k)),
        s.lambda_lr(LR, lambda k: la**k / (1.0 + lb * k)))
    add("multiplicative_lr", lambda o: S.MultiplicativeLR(o, lambda k: la + lb / (1.0 + k)),
        s.multiplicative_lr(LR, lambda k: la + lb / (1.0 + k)), steps=25)
    m1 = i(1, 15)
    add("sequential_lr",
        lambda o: S.SequentialLR(o, [S.LinearLR(o, sf, 1.0, t2), S.CosineAnnealingLR(o, tm, em)],
                                 [m1]),
        s.sequential_lr([s.linear_lr(LR, sf, 1.0, t2), s.cosine_annealing_lr(LR, tm, em)], [m1]))
    add("chained_scheduler",
        lambda o: S.ChainedScheduler([S.ConstantLR(o, f, t), S.ExponentialLR(o, g3),
                                      S.MultiStepLR(o, ms, g2)]),
        s.chained_scheduler(LR, [s.constant_lr(LR, f, t), s.exponential_lr(LR, g3),
                                 s.multi_step_lr(LR, ms, g2)]))
    swa, ae, strat = u(0.001, 0.1), i(0, 12), str(rng.choice(["cos", "linear"]))
    add("swa_lr", lambda o: SWALR(o, swa_lr=swa, anneal_epochs=ae, anneal_strategy=strat),
        s.swa_lr(LR, swa, ae, strat))
    return cases


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_schedulers_match_torch(seed):
    cases = _random_cases(np.random.default_rng(seed))

    @jax.jit
    def evaluate():
        out = []
        for _, _, fn, mom, n, _ in cases:
            ks = jnp.arange(n, dtype=jnp.int32)
            out.append((jax.vmap(fn)(ks), None if mom is None else jax.vmap(mom)(ks)))
        return out

    for (name, build, _, mom, n, optimizer), (lr, m) in zip(cases, evaluate(), strict=True):
        want_lr, want_m = _torch_lrs(build, n, optimizer)
        atol = 1e-14 * max(1.0, float(np.max(np.abs(want_lr))))
        np.testing.assert_allclose(np.asarray(lr), want_lr, rtol=1e-10, atol=atol,
                                   err_msg=f"{name} (seed {seed})")
        if mom is not None:
            np.testing.assert_allclose(np.asarray(m), want_m, rtol=1e-10, atol=1e-14,
                                       err_msg=f"{name} momentum (seed {seed})")


def test_sequential_lr_restarts_multiplicative_lr_from_base_torch_does_not():
    """Documented difference: torch has no closed form for MultiplicativeLR, so at its
    milestone it continues from the lr the previous scheduler reached (times f(0))."""
    build = lambda o: S.SequentialLR(  # noqa: E731
        o, [S.ExponentialLR(o, 0.5), S.MultiplicativeLR(o, lambda k: 0.9)], [3])
    want, _ = _torch_lrs(build, 8)
    ours = [float(x) for x in jax.vmap(s.sequential_lr(
        [s.exponential_lr(LR, 0.5), s.multiplicative_lr(LR, lambda k: 0.9)], [3]))(
        jnp.arange(8, dtype=jnp.int32))]
    np.testing.assert_allclose(ours[:3], want[:3], rtol=1e-12)
    assert ours[3] == pytest.approx(LR)  # restart at the base lr
    assert want[3] == pytest.approx(LR * 0.5**2 * 0.9)  # torch: previous lr times f(0)


def test_chained_scheduler_with_an_absolute_scheduler_is_not_a_product_in_torch():
    """Documented difference: LambdaLR sets the lr outright, so in a torch chain it discards
    the multiplicative history of the schedulers before it."""
    build = lambda o: S.ChainedScheduler(  # noqa: E731
        [S.ExponentialLR(o, 0.5), S.LambdaLR(o, lambda k: 1.0 / (1.0 + k))])
    want, _ = _torch_lrs(build, 6)
    ours = np.asarray(jax.vmap(s.chained_scheduler(
        LR, [s.exponential_lr(LR, 0.5), s.lambda_lr(LR, lambda k: 1.0 / (1.0 + k))]))(
        jnp.arange(6, dtype=jnp.int32)))
    assert ours[3] == pytest.approx(LR * 0.5**3 / 4)
    assert want[3] == pytest.approx(LR / 4)


@pytest.mark.parametrize("seed", range(4))
def test_random_plateau_matches_torch(seed):
    rng = np.random.default_rng(seed)
    kwargs = dict(
        mode=str(rng.choice(["min", "max"])),
        factor=float(rng.uniform(0.1, 0.9)),
        patience=int(rng.integers(0, 4)),
        threshold=float(rng.choice([0.0, 1e-4, 0.01, 0.1])),
        threshold_mode=str(rng.choice(["rel", "abs"])),
        cooldown=int(rng.integers(0, 3)),
        min_lr=float(rng.choice([0.0, 1e-3])),
        eps=float(rng.choice([1e-8, 1e-3])),
    )
    steps = 60
    metrics = np.round(np.cumsum(rng.standard_normal(steps)) * 0.1 + 5.0, int(rng.integers(1, 4)))
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=LR)
    sched = S.ReduceLROnPlateau(opt, **kwargs)
    want = []
    for m in metrics:
        sched.step(float(m))
        want.append(opt.param_groups[0]["lr"])
    plateau = reduce_lr_on_plateau(LR, **kwargs)
    state, got = plateau.init(), []
    step = jax.jit(plateau.step)
    for m in metrics:
        state = step(state, m)
        got.append(float(state.lr))
    np.testing.assert_allclose(got, want, rtol=1e-15, err_msg=str(kwargs))


# Every scheduler past its end against torch: (id, torch builder, schedule, where it ends).
# torch's schedulers with an end hold their last value (ConstantLR, LinearLR, PolynomialLR,
# SWALR, a SequentialLR ending in one), CosineAnnealingLR keeps following its cosine (its
# recursive form is periodic with period 2 T_max), and OneCycleLR raises.
PAST_END = [
    ("constant_lr", lambda o: S.ConstantLR(o, 0.4, 4), s.constant_lr(LR, 0.4, 4), 4),
    ("linear_lr", lambda o: S.LinearLR(o, 0.3, 0.8, 5), s.linear_lr(LR, 0.3, 0.8, 5), 5),
    ("polynomial_lr", lambda o: S.PolynomialLR(o, 5, 2.0), s.polynomial_lr(LR, 5, 2.0), 5),
    ("cosine_annealing_lr", lambda o: S.CosineAnnealingLR(o, 5, 0.01),
     s.cosine_annealing_lr(LR, 5, 0.01), 5),
    ("multi_step_lr", lambda o: S.MultiStepLR(o, [2, 5], 0.5), s.multi_step_lr(LR, [2, 5], 0.5),
     5),
    ("swa_lr", lambda o: SWALR(o, swa_lr=0.02, anneal_epochs=3), s.swa_lr(LR, 0.02, 3), 3),
    ("sequential_lr", lambda o: S.SequentialLR(o, [S.ConstantLR(o, 0.5, 2),
                                                   S.LinearLR(o, 0.5, 1.0, 3)], [2]),
     s.sequential_lr([s.constant_lr(LR, 0.5, 2), s.linear_lr(LR, 0.5, 1.0, 3)], [2]), 5),
]


@pytest.mark.parametrize("name, build, fn, end", PAST_END, ids=[c[0] for c in PAST_END])
def test_schedulers_past_their_end_do_what_torch_does(name, build, fn, end):
    steps = 4 * end + 3
    want, _ = _torch_lrs(build, steps)
    got = jax.jit(jax.vmap(fn))(jnp.arange(steps, dtype=jnp.int32))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-15)


def test_one_cycle_past_its_end_raises_as_torch_does():
    total = 10
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=LR, momentum=0.9)
    sched = S.OneCycleLR(opt, 1.0, total_steps=total)
    for _ in range(total):  # the lr of steps 0..total, as ours(0..total)
        opt.step()
        sched.step()
    opt.step()
    with pytest.raises(ValueError) as theirs:
        sched.step()  # the lr of step total + 1
    ours = s.one_cycle_lr(1.0, total_steps=total)
    ours(total)
    with pytest.raises(ValueError) as mine:
        ours(total + 1)
    assert str(mine.value) == str(theirs.value)
