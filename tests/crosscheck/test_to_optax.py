"""to_optax: every configuration said to match does match fnlearn (float64, 100 steps, rtol
1e-10) and every one said to differ does differ; the printed expressions build the same
transform; the defaults table is fnlearn's."""

import inspect
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fnlearn.crosscheck as cc
from fnlearn import optim
from fnlearn.crosscheck import _compare, _optim_cases
from fnlearn.crosscheck._optax_map import TORCH_DEFAULTS
from tests._once import once_per_run
from tests._tiers import first_of_each

STEPS = 100


def _decay(lr):
    return _optim_cases._decay(lr)


# (id, fnlearn factory name, options); lr schedules marked by a callable lr
EXTRA = [
    ("sgd-dampening-without-momentum", "sgd", dict(lr=0.01, dampening=0.5)),
    ("sgd-dampening-0.9", "sgd", dict(lr=0.01, momentum=0.9, dampening=0.9)),
    ("rmsprop-centered-momentum-maximize", "rmsprop",
     dict(centered=True, momentum=0.5, maximize=True)),
    ("adagrad-eps0-schedule-lr_decay", "adagrad", dict(lr=_decay(0.01), lr_decay=0.05, eps=0.0)),
    ("adam-amsgrad-wd-maximize", "adam", dict(amsgrad=True, weight_decay=0.1, maximize=True)),
    ("adam-decoupled-amsgrad", "adam", dict(amsgrad=True, weight_decay=0.1,
                                            decoupled_weight_decay=True)),
    ("adamw-wd0", "adamw", dict(weight_decay=0.0)),
    ("nadam-decoupled", "nadam", dict(weight_decay=0.1, decoupled_weight_decay=True)),
    ("radam-wd-l2-eps", "radam", dict(weight_decay=0.1)),
    ("radam-eps0-maximize", "radam", dict(eps=0.0, maximize=True)),
    ("adamax-betas", "adamax", dict(betas=(0.5, 0.9), eps=1e-3)),
    ("adadelta-rho", "adadelta", dict(lr=0.5, rho=0.5, eps=1e-3)),
    ("asgd-big-lambd", "asgd", dict(lr=0.1, lambd=0.1, alpha=0.5)),
    ("rprop-maximize", "rprop", dict(maximize=True, etas=(0.3, 1.5))),
]


def _id(algorithm, options):
    return algorithm + "".join(
        f"-{k}={getattr(v, '_crosscheck_text', v) if callable(v) else v}"
        for k, v in options.items())


def _cases():
    cases = []
    for algorithm, options, scheduled in _optim_cases.OPTIMIZER_CASES:
        options = dict(options)
        if scheduled:
            options["lr"] = _decay(options.get("lr", TORCH_DEFAULTS[algorithm]["lr"]))
        cases.append((_id(algorithm, options), algorithm, options))
    return cases + EXTRA


CASES = _cases()
#: the cases test_documented_magnitudes reads
MAGNITUDES = ("adam-amsgrad=True", "sgd-lr=0.01-momentum=0.9-dampening=0.5", "adagrad",
              "adagrad-eps=0.01", "radam", "rprop")
_EXTRA_IDS = {e[0] for e in EXTRA}


def _tiered(cases):
    """The default tier keeps each algorithm's first case, the first with an lr schedule and
    the documented magnitudes' cases; the others (EXTRA's all) are exhaustive."""
    params = [pytest.param(c[0], id=c[0],
                           marks=(pytest.mark.exhaustive,) if c[0] in _EXTRA_IDS else ())
              for c in cases]
    scheduled = {c[0] for c in cases if any(callable(v) for v in c[2].values())}
    return first_of_each(params, lambda case_id: case_id if case_id in MAGNITUDES else (
        "schedule" if case_id in scheduled else case_id.split("-")[0]))


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    """The runs of the cases this session collected (each case runs on its own state, so a
    subset computes the same numbers) and of the documented magnitudes'."""
    module = sys.modules[__name__]
    wanted = {item.callspec.params["case_id"] for item in request.session.items
              if getattr(item, "module", None) is module and hasattr(item, "callspec")
              and "case_id" in item.callspec.params}
    wanted.update(MAGNITUDES)
    cases = [c for c in CASES if c[0] in wanted]
    name = f"to_optax_runs_{len(cases)}"
    return once_per_run(tmp_path_factory, name, lambda: _runs(cases))


def _runs(cases):
    """The fnlearn optimizers of ``cases`` and their to_optax transforms run in ONE compile
    on the same 100 gradients, and again with each transform built from its printed
    expression in its place (an identical program where the printed code builds the same
    transform: XLA's fast code generation may round the same transform differently in two
    places of one program): each case's ``(exact, reason, reports, refs)``."""
    params = {"w": jnp.asarray(np.random.default_rng(0).standard_normal((4, 3))),
              "b": jnp.zeros(3)}
    with _compare.precision("float64"):
        grads = cc.make_grads(params, STEPS, key=1)
        given, printed, slots = [], [], {}
        for case_id, algorithm, options in cases:
            eq = cc.to_optax(algorithm, **options)
            fl = getattr(optim, algorithm)(**options)
            has_printed = not any(callable(v) for v in options.values())
            slots[case_id] = (eq, len(given), has_printed)
            given += [fl, eq.transform]
            printed += [fl, eval(eq.expression, {"optax": optax, "jnp": jnp})  # printed code
                        if has_printed else eq.transform]
        trajs = _compare.jax_trajectories(given, params, grads)
        printed_trajs = _compare.jax_trajectories(printed, params, grads)
    p0 = [np.asarray(p) for p in jax.tree.leaves(params)]
    out = {}
    for case_id, (eq, start, has_printed) in slots.items():
        fl, ref = trajs[start:start + 2]
        refs = [ref, printed_trajs[start + 1]] if has_printed else [ref]
        reports = [_compare.report_from(fl, ref, p0, a="fnlearn", b=eq.expression,
                                        leaves=("b", "w"), dtype="float64", rtol=1e-10,
                                        atol=0.0) for ref in refs]
        out[case_id] = (eq.exact, eq.reason, reports, refs)
    return out


@pytest.mark.parametrize("case_id", _tiered(CASES))
def test_exact_iff_it_matches(runs, case_id):
    exact, reason, reports, _ = runs[case_id]
    report = reports[0]
    if exact:
        assert report.agree, f"said to match but:\n{report}"
        assert reason == ""
    else:
        assert not report.agree, f"said to differ ({reason}) but matches:\n{report}"
        assert reason


@pytest.mark.parametrize("case_id", _tiered(
    [c for c in CASES if not any(callable(v) for v in c[2].values())]))
def test_printed_expression_builds_the_same_transform(runs, case_id):
    *_, refs = runs[case_id]
    for a, b in zip(refs[0], refs[1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_documented_magnitudes(runs):
    """The headline numbers of torch-semantics 2.6 hold for fnlearn against optax."""
    rel = {case_id: r[2][0].max_rel for case_id, r in runs.items()}
    assert rel["adam-amsgrad=True"] > 0.1
    assert rel["sgd-lr=0.01-momentum=0.9-dampening=0.5"] > 0.1
    assert 1e-9 < rel["adagrad"] < 1e-6  # eps=1e-10 inside the sqrt, gradients 0.1..10
    assert rel["adagrad-eps=0.01"] > 0.1
    assert 1e-10 < rel["radam"] < 1e-7
    assert rel["rprop"] > 0.5


def test_to_optax_takes_the_factory_and_the_defaults_are_fnlearns():
    assert cc.to_optax(optim.adam, amsgrad=True).exact is False
    assert cc.to_optax(optim.clip_grad_norm_transform, max_norm=2.0).expression == (
        "optax.clip_by_global_norm(2.0)")
    for name, defaults in TORCH_DEFAULTS.items():
        fn = getattr(optim, name if not name.startswith("clip") else f"{name}_transform")
        params = inspect.signature(fn).parameters
        # fused: where the update runs (one C++ loop on CPU), not what it computes
        assert set(params) - {"fused"} == set(defaults), name
        if "fused" in params:
            assert params["fused"].default is None  # torch's default too
            assert cc.to_optax(fn, fused=True).expression == cc.to_optax(fn).expression
        for key, value in defaults.items():
            default = params[key].default
            if default is not inspect.Parameter.empty:
                assert default == value, (name, key)


def test_results_say_what_to_write():
    eq = cc.to_optax("adamw")
    assert eq.exact and "weight_decay=0.01" in eq.expression and "1e-4" in eq.note
    eq = cc.to_optax("adagrad", lr=0.1, eps=0.0, lr_decay=0.05)
    assert eq.exact and "lambda k: 0.1 / (1 + k * 0.05)" in eq.expression and "nan" in eq.note
    eq = cc.to_optax("rmsprop", lr=_decay(0.01), momentum=0.9)
    assert eq.exact and "optax.trace(decay=0.9), optax.scale_by_learning_rate(" in eq.expression
    eq = cc.to_optax("sgd", momentum=0.9, weight_decay=0.1, maximize=True)
    assert eq.expression.startswith(
        "optax.chain(optax.scale(-1.0), optax.add_decayed_weights(0.1), optax.sgd(")
    assert "transform=<optax.chain(optax.scale(-1.0)" in repr(eq) and "<function" not in repr(eq)


@pytest.mark.parametrize("max_norm, exact", [(1.0, False)], ids=["clip_grad_norm"])
def test_clip_grad_norm_differs_while_clipping(max_norm, exact):
    eq = cc.to_optax("clip_grad_norm", max_norm=max_norm)
    r = cc.compare(optim.clip_grad_norm_transform(max_norm), eq.transform,
                   {"w": jnp.zeros(5)}, steps=5)
    assert eq.exact is exact and r.verdict == "differ" and "1e-6" in eq.reason
    assert 1e-8 < r.max_rel < 1e-5
    assert "norm_type=1" in cc.to_optax("clip_grad_norm", norm_type=1.0).reason


def test_clip_grad_value_matches():
    eq = cc.to_optax("clip_grad_value", clip_value=0.5)
    r = cc.compare(optim.clip_grad_value_transform(0.5), eq.transform, {"w": jnp.zeros(5)},
                   steps=5)
    assert eq.exact and r.verdict == "match"


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        (("lamb",), {}, ValueError, "unknown optimizer 'lamb'"),
        (("adam",), dict(beta1=0.9), TypeError, "unexpected option"),
        (("sgd",), dict(nesterov=True), ValueError, "Nesterov momentum requires"),
        (("adam",), dict(eps=lambda k: 1e-8), TypeError, "only lr may be a schedule"),
        (("adam",), dict(lr=float("nan")), ValueError, "lr is nan"),
        (("asgd",), dict(lr=lambda k: 0.1), ValueError, "lr must be a number"),
    ],
    ids=["unknown", "bad-option", "nesterov", "eps-schedule", "nan", "asgd-schedule"],
)
def test_bad_configurations_raise(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        cc.to_optax(*args, **kwargs)


@pytest.mark.parametrize(
    "optimizer, error, match",
    [
        ("Adam", ValueError, r"unknown optimizer 'Adam'; .*write to_optax\('adam', \.\.\.\)"),
        ("RMSprop", ValueError, r"write to_optax\('rmsprop', \.\.\.\)"),
        ("SparseAdam", ValueError, r"write to_optax\('sparse_adam', \.\.\.\)"),
        (optim.adam(1e-3), TypeError,
         r"not a built optimizer.*to_optax\('adam', lr=1e-3\)"),
        ("sparse_adam", ValueError, "optax has no equivalent of fnlearn.optim.sparse_adam"),
    ],
    ids=["torch-name", "torch-name-2", "torch-name-sparse", "built-optimizer", "no-equivalent"],
)
def test_porting_mistakes_say_what_to_write(optimizer, error, match):
    with pytest.raises(error, match=match):
        cc.to_optax(optimizer)


def test_repr_shows_the_transform():
    eq = cc.to_optax("adam", lr=1e-2)
    assert repr(eq).startswith(
        "OptaxEquivalent(transform=<optax.adam(0.01, b1=0.9, b2=0.999, eps=1e-08)>, exact=True")
