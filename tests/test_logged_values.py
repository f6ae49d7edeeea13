"""What a training script hands aletheia is kept as the number or the values it is."""

from __future__ import annotations

import decimal

import numpy as np
import pytest

from aletheia.errors import ValidationError
from aletheia.tracking import validation


def test_a_numpy_bool_metric_is_refused_as_a_bool() -> None:
    # A bool, not "not a number": the hint to log float(flag) is the one that helps.
    for flag in (True, np.bool_(True), np.array(True)):
        with pytest.raises(ValidationError, match="is a bool"):
            validation.validate_metric_value(flag, "converged")


def test_a_decimal_metric_is_logged_as_its_float() -> None:
    # MLflow takes any numbers.Number; a Decimal was refused as "not a number".
    assert validation.validate_metric_value(decimal.Decimal("1.25"), "lr") == 1.25
    with pytest.raises(ValidationError, match="not a number"):
        validation.validate_metric_value(decimal.Decimal("sNaN"), "lr")


def test_an_array_param_keeps_every_value() -> None:
    # str() of a long array elides its middle: '[   0    1    2 ... 1997 1998 1999]'.
    kept = validation.validate_params({"ids": np.arange(2000), "w": np.eye(2)}, "params")
    assert kept["ids"] == list(range(2000))
    assert kept["w"] == ["[1.0, 0.0]", "[0.0, 1.0]"]  # Firestore has no arrays of arrays
    assert validation.validate_params({"x": np.array(2.5)}, "params") == {"x": 2.5}
