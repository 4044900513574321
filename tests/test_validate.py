"""fnlearn._validate: the shared small checks (one meaning each)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnlearn._validate import (
    check_range,
    concrete_float,
    hyperparameter,
    is_int,
    is_number,
    require_extra,
)


def test_is_number_and_is_int():
    assert is_number(1) and is_number(0.5) and is_number(np.float32(2)) and is_number(np.int8(3))
    assert not any(is_number(x) for x in (True, np.bool_(True), jnp.array(1.0), "1", None))
    assert is_int(3, 1) and is_int(np.int64(0), 0) and is_int(-2)
    assert not any(is_int(x, 1) for x in (0, True, 1.0, np.float64(2), "2", None))


def test_concrete_float_is_none_under_a_trace():
    assert concrete_float(np.array([2.5])) == 2.5 and concrete_float(jnp.array(1.5)) == 1.5
    assert concrete_float(lambda k: 1.0) is None and concrete_float(jnp.ones(2)) is None
    seen = []
    jax.jit(lambda x: seen.append(concrete_float(x)) or x)(1.0)
    assert seen == [None]


def test_hyperparameter_normalizes_and_refuses():
    assert hyperparameter(0.1, "lr", "f") == 0.1 and hyperparameter(True, "lr", "f") == 1
    one = hyperparameter(jnp.array([0.1], jnp.bfloat16), "lr", "f")
    assert one.shape == () and one.dtype == jnp.bfloat16
    schedule = lambda k: 0.1  # noqa: E731
    assert hyperparameter(schedule, "lr", "f") is schedule
    with pytest.raises(TypeError, match=r"f: lr must be a number or a 0-d array, got <function"):
        hyperparameter(schedule, "lr", "f", schedule=False)
    with pytest.raises(TypeError, match=r"write lr=0.01, not the string '1e-2'"):
        hyperparameter("1e-2", "lr", "f")
    with pytest.raises(TypeError, match=r"write lr=0.1"):
        hyperparameter([0.1], "lr", "f")
    with pytest.raises(TypeError, match="real number, got an array of complex64"):
        hyperparameter(jnp.array(1j, jnp.complex64), "lr", "f")
    with pytest.raises(ValueError, match=r"f: Tensor eps must be 1-element.*\(2, 1\)"):
        hyperparameter(np.ones((2, 1)), "eps", "f")


def test_check_range_and_require_extra(monkeypatch):
    check_range(jnp.array(0.5), "bad", lambda v: v < 1)
    with pytest.raises(ValueError, match=r"^bad: 1.5$"):
        check_range(jnp.array([1.5]), "bad", lambda v: v < 1)
    with pytest.raises(ValueError, match=r"^bad: nan$"):
        check_range(float("nan"), "bad", lambda v: True)
    import sys

    monkeypatch.setitem(sys.modules, "tqdm", None)
    with pytest.raises(ImportError, match=r'x needs tqdm.*pip install "fnlearn\[train\]" .*'
                                          r"or pip install tqdm"):
        require_extra("tqdm", "x")
