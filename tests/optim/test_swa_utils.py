"""fnlearn.optim.swa_utils against torch.optim.swa_utils.AveragedModel's committed numbers
(reference/swa_utils.npz, written by ``python -m tests.generate_reference swa_utils``),
and the averaging rules by hand."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnlearn.optim import swa_utils
from tests._reference import TESTS, load
from tests.optim.swa_utils_cases import CASES, SHAPES, snapshots

TOL = {"float64": 1e-10, "float32": 1e-5}
REFERENCE = load(TESTS / "optim" / "reference" / "swa_utils.npz")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(CASES))
def test_averaged_model_matches_torch(name, dtype):
    avg = swa_utils.averaged_model(**CASES[name][1](swa_utils))
    snaps = [{k: jnp.asarray(v, dtype) for k, v in s.items()} for s in snapshots()]
    state = avg.init({k: jnp.zeros(s, dtype) for k, s in SHAPES.items()})
    update = jax.jit(avg.update)
    for i, snap in enumerate(snaps):
        state = update(state, snap)
        assert int(state.n_averaged) == i + 1
        for k in SHAPES:
            ref = REFERENCE[f"{name}|{dtype}|{k}"][i]
            assert state.params[k].dtype == np.dtype(dtype)
            np.testing.assert_allclose(np.asarray(state.params[k]), ref, rtol=TOL[dtype],
                                       atol=TOL[dtype] * np.max(np.abs(ref)))


def test_rules_by_hand():
    a, c, n = jnp.asarray([1.0, 2.0]), jnp.asarray([3.0, -2.0]), jnp.asarray(3)
    np.testing.assert_allclose(swa_utils.get_swa_avg_fn()(a, c, n), [1.5, 1.0])
    np.testing.assert_allclose(swa_utils.get_swa_multi_avg_fn()(a, c, n), [1.5, 1.0])
    np.testing.assert_allclose(swa_utils.get_ema_avg_fn(0.75)(a, c, n), [1.5, 1.0])
    np.testing.assert_allclose(swa_utils.get_ema_multi_avg_fn(0.75)(a, c, n), [1.5, 1.0])


def test_first_update_copies_and_default_is_the_running_mean():
    avg = swa_utils.averaged_model()
    state = avg.init({"w": jnp.full(2, 100.0)})  # the initial copy is overwritten
    for value in (1.0, 2.0, 6.0):
        state = avg.update(state, {"w": jnp.full(2, value)})
    np.testing.assert_allclose(np.asarray(state.params["w"]), [3.0, 3.0], rtol=1e-15)


def test_init_copies_and_update_is_scan_safe():
    params = {"w": jnp.arange(3.0)}
    avg = swa_utils.averaged_model(avg_fn=swa_utils.get_ema_avg_fn(0.5))
    state = avg.init(params)
    assert state.params["w"] is not params["w"]

    def body(s, x):
        return avg.update(s, {"w": x}), None

    out, _ = jax.lax.scan(body, state, jnp.stack([jnp.ones(3), 3 * jnp.ones(3)]))
    np.testing.assert_allclose(np.asarray(out.params["w"]), [2.0, 2.0, 2.0])


def test_bad_arguments():
    with pytest.raises(ValueError, match="Only one of avg_fn and multi_avg_fn"):
        swa_utils.averaged_model(swa_utils.get_swa_avg_fn(), swa_utils.get_swa_multi_avg_fn())
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"Invalid decay value .* in \[0,1\] range"):
            swa_utils.get_ema_avg_fn(bad)
        with pytest.raises(ValueError, match=r"Invalid decay value"):
            swa_utils.get_ema_multi_avg_fn(bad)
