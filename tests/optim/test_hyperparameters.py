"""Hyperparameters as torch takes them, for every optimizer: numbers, 0-d and one-element
arrays (concrete or traced) give the numbers' result; strings, None and arrays of several
elements are refused at construction, with torch's exception class; torch's calling form
``adam(params, lr=...)`` and ``betas=0.9`` get a message that shows what to write."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnlearn import optim
from tests.optim.hyperparameter_cases import CASES, IDS, draw

STEPS = 2
#: cheap to compile: the default run; every optimizer in the exhaustive tier (and all of them
#: against torch in tests/optim/test_hyperparameters_live_torch.py)
_QUICK = {"sgd", "adam", "rprop"}
_TIERED = [c if c.name in _QUICK else pytest.param(c, marks=pytest.mark.exhaustive)
           for c in CASES]


def _params(name):
    rng = np.random.default_rng(1)
    params = {"w": jnp.asarray(rng.standard_normal((3, 2)))}
    if name != "muon":  # Muon takes matrices only
        params["b"] = jnp.asarray(rng.standard_normal(()))  # a 0-d leaf stays 0-d
    return params


def _run(opt, params):
    """``STEPS`` updates on fixed random gradients, as one jitted function."""
    rng = np.random.default_rng(2)
    grads = [jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape)), params)
             for _ in range(STEPS)]

    @jax.jit
    def run(params, grads):
        state = opt.init(params)
        for g in grads:
            updates, state = opt.update(g, state, params)
            params = optim.apply_updates(params, updates)
        return params

    return run(params, grads)


def _factory(name):
    """The optimizer's factory; Muon with one Newton-Schulz step (its compile time is the
    five unrolled steps; the hyperparameter path is the same)."""
    factory = getattr(optim, name)
    return (lambda **kw: factory(**kw, ns_steps=1)) if name == "muon" else factory


def _as_arrays(values, rng):
    """Each number as a 0-d or a one-element array (drawn), pairs element by element."""
    def one(v):
        return jnp.asarray(v).reshape(() if rng.random() < 0.5 else (1,))
    return {k: tuple(one(x) for x in v) if isinstance(v, tuple) else one(v)
            for k, v in values.items()}


@pytest.mark.parametrize("case", _TIERED, ids=IDS)
def test_array_hyperparameters_give_the_numbers_result(case):
    values = draw(case, np.random.default_rng(0))
    factory = _factory(case.name)
    params = _params(case.name)
    expected = _run(factory(**values), params)
    actual = _run(factory(**_as_arrays(values, np.random.default_rng(3))), params)
    for key in params:
        assert actual[key].shape == params[key].shape
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("case", _TIERED, ids=IDS)
def test_traced_one_element_lr_under_jit(case):
    factory = _factory(case.name)
    params = _params(case.name)
    grads = jax.tree.map(jnp.ones_like, params)

    def step(lr):
        opt = factory(lr=lr)
        return opt.update(grads, opt.init(params), params)[0]

    traced = jax.jit(step)(jnp.array([0.01]))
    eager = step(0.01)
    for key in params:
        assert traced[key].shape == params[key].shape
        np.testing.assert_allclose(traced[key], eager[key], rtol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_refused_at_construction_with_the_argument_named(case):
    factory = getattr(optim, case.name)
    with pytest.raises(TypeError, match=rf"{case.name}: lr must be a number.*write lr=0.001"):
        factory(lr="0.001")
    with pytest.raises(TypeError, match=rf"{case.name}: lr must be a number.*None"):
        factory(lr=None)
    for key in case.scalars:
        with pytest.raises(ValueError, match=rf"Tensor {key} must be 1-element.*\(2,\)"):
            factory(**{key: jnp.array([1e-3, 1e-3])})
        with pytest.raises(TypeError, match=rf"{key} must be a number"):
            factory(**{key: [1e-3, 1e-3]})
    for key in case.pairs:
        with pytest.raises(TypeError, match=rf"{key} must be a pair, e.g. {key}=\("):
            factory(**{key: 0.9})
    # concrete arrays get torch's range checks, as numbers do
    with pytest.raises(ValueError, match="[Ll]earning rate.*-0.5"):
        factory(lr=jnp.array(-0.5))
    with pytest.raises(ValueError, match="[Ll]earning rate.*nan"):
        factory(lr=np.array([np.nan]))


def test_array_betas_get_the_range_check():
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1: 1.5"):
        optim.adam(betas=(0.9, jnp.array([1.5])))
    with pytest.raises(ValueError, match="Invalid eta values: 0.5, 0.9"):
        optim.rprop(etas=(jnp.array(0.5), jnp.array(0.9)))
    with pytest.raises(ValueError, match="Invalid momentum value: -0.1"):
        optim.sgd(momentum=np.float64(-0.1))


@pytest.mark.parametrize("name", [*IDS, "lbfgs"])
def test_torch_calling_form_teaches_the_jax_form(name):
    """torch's ``Adam(model.parameters(), lr=1e-3)``: Python alone would say "got multiple
    values for argument 'lr'"."""
    factory = getattr(optim, name)
    params = {"w": jnp.ones((3, 2))}
    message = rf"{name}: fnlearn optimizers do not take the parameters.*opt = {name}\(lr=...\)"
    with pytest.raises(TypeError, match=message):
        factory(params, lr=1e-3)
    with pytest.raises(TypeError, match=message):
        factory(list(params.values()))
    with pytest.raises(TypeError, match=message):
        factory(iter(params.values()))
    assert factory.__name__ == name and "lr" in factory.__wrapped__.__code__.co_varnames


def test_bool_hyperparameter_is_a_number_as_in_torch():
    # torch takes lr=True as 1 (bool is an int in Python)
    params = _params("sgd")
    np.testing.assert_allclose(_run(optim.sgd(lr=True), params)["w"],
                               _run(optim.sgd(lr=1), params)["w"])
