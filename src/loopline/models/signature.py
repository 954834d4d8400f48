"""Model signatures: the input (and output) schema inferred from an example, enforced at
predict time. Safe casts are applied (int to float, narrower to wider); everything else
is an error that names the column and, for missing values, the row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from loopline.core.errors import InvalidInput, SignatureMismatch

ExtraColumns = Literal["error", "drop"]

# Column types a signature speaks of, from the pandas dtype of an example.
_KIND_TO_TYPE = {"b": "boolean", "i": "integer", "u": "integer", "f": "double", "M": "datetime"}
_TYPES = ("boolean", "integer", "double", "string", "datetime", "category")
# What a declared type accepts without loss, besides itself.
_SAFE_FROM = {"double": {"integer"}, "string": {"category"}, "category": {"string"}}


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    name: str
    type: str
    nullable: bool = False
    categories: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class TensorSpec:
    dtype: str
    shape: tuple[int | None, ...]  # None for a free dimension, first the batch


@dataclass(frozen=True, slots=True)
class Signature:
    inputs: tuple[ColumnSpec, ...] | TensorSpec
    outputs: tuple[ColumnSpec, ...] | TensorSpec | None = None
    extra_columns: ExtraColumns = "error"

    @property
    def input_names(self) -> list[str]:
        return [c.name for c in self.inputs] if isinstance(self.inputs, tuple) else []

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": _schema_to_dict(self.inputs),
            "outputs": None if self.outputs is None else _schema_to_dict(self.outputs),
            "extra_columns": self.extra_columns,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        outputs = data.get("outputs")
        return cls(
            inputs=_schema_from_dict(data["inputs"]),
            outputs=None if outputs is None else _schema_from_dict(outputs),
            extra_columns=data.get("extra_columns", "error"),
        )


def _schema_to_dict(schema: tuple[ColumnSpec, ...] | TensorSpec) -> dict[str, Any]:
    if isinstance(schema, TensorSpec):
        return {"tensor": {"dtype": schema.dtype, "shape": list(schema.shape)}}
    return {
        "columns": [
            {"name": c.name, "type": c.type, "nullable": c.nullable}
            | ({"categories": list(c.categories)} if c.categories is not None else {})
            for c in schema
        ]
    }


def _schema_from_dict(data: Mapping[str, Any]) -> tuple[ColumnSpec, ...] | TensorSpec:
    if "tensor" in data:
        return TensorSpec(data["tensor"]["dtype"], tuple(data["tensor"]["shape"]))
    columns = []
    for c in data["columns"]:
        if c["type"] not in _TYPES:
            raise InvalidInput(f"signature column {c['name']!r} has unknown type {c['type']!r}")
        categories = tuple(c["categories"]) if c.get("categories") is not None else None
        columns.append(ColumnSpec(c["name"], c["type"], bool(c["nullable"]), categories))
    return tuple(columns)


def column_type(series: pd.Series) -> str:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if dtype.kind in _KIND_TO_TYPE:
        return _KIND_TO_TYPE[dtype.kind]
    if dtype.kind in "OUS" or pd.api.types.is_string_dtype(dtype):
        kinds = {_value_type(v) for v in series.dropna()}
        if len(kinds) == 1:
            return kinds.pop()
        if kinds == {"integer", "double"}:
            return "double"
        if not kinds:
            return "string"
        raise InvalidInput(f"column {series.name!r} mixes value types {sorted(kinds)}; give it one type")
    raise InvalidInput(f"column {series.name!r} has dtype {dtype}, which a signature cannot describe")


def _value_type(value: object) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool | np.bool_):
        return "boolean"
    if isinstance(value, int | np.integer):
        return "integer"
    if isinstance(value, float | np.floating):
        return "double"
    return type(value).__name__


def as_frame(data: Any) -> pd.DataFrame:
    """A DataFrame from a DataFrame, a record dict, a list of records, or a dict of columns."""
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, Mapping):
        first = next(iter(data.values()), None)
        is_columns = isinstance(first, Sequence | np.ndarray | pd.Series) and not isinstance(first, str)
        return pd.DataFrame(data) if is_columns else pd.DataFrame([data])
    if isinstance(data, Sequence) and not isinstance(data, str) and all(isinstance(r, Mapping) for r in data):
        return pd.DataFrame(list(data))
    raise InvalidInput(
        f"cannot read {type(data).__name__} as model input: "
        "pass a DataFrame, a record (dict) or a list of records"
    )


def _tensor_spec(array: np.ndarray) -> TensorSpec:
    return TensorSpec(str(array.dtype), (None, *array.shape[1:]))


def infer_schema(example: Any) -> tuple[ColumnSpec, ...] | TensorSpec:
    if isinstance(example, np.ndarray):
        return _tensor_spec(example)
    frame = as_frame(example)
    columns = []
    for name in frame.columns:
        if not isinstance(name, str):
            raise InvalidInput(f"column names must be strings for a signature, got {name!r}")
        series = frame[name]
        kind = column_type(series)
        categories = tuple(str(c) for c in series.cat.categories) if kind == "category" else None
        columns.append(ColumnSpec(name, kind, bool(series.isna().any()), categories))
    return tuple(columns)


def infer_signature(
    input_example: Any, output_example: Any = None, *, extra_columns: ExtraColumns = "error"
) -> Signature:
    """Infer a signature. A column with a missing value in the example is nullable."""
    outputs = None
    if output_example is not None:
        outputs = infer_schema(
            output_example
            if isinstance(output_example, np.ndarray | pd.DataFrame)
            else np.asarray(output_example)
        )
    return Signature(infer_schema(input_example), outputs, extra_columns)


class InputChecker:
    """Checks prediction input against a signature. Built once per loaded model, so the
    common cases (an all-double frame or records in the right shape) cost microseconds."""

    def __init__(self, signature: Signature) -> None:
        self.signature = signature
        columns = signature.inputs
        self._names = [c.name for c in columns] if isinstance(columns, tuple) else []
        self._index = pd.Index(self._names)
        self._all_double = isinstance(columns, tuple) and all(c.type == "double" for c in columns)
        refused = [i for i, c in enumerate(columns) if not c.nullable] if isinstance(columns, tuple) else []
        self._all_refused = len(refused) == len(self._names)
        self._refused = np.array(refused, dtype=np.intp)

    def __call__(self, data: Any) -> pd.DataFrame | np.ndarray:
        """`data` in the model's column order and types; SignatureMismatch lists every problem."""
        if isinstance(self.signature.inputs, TensorSpec):
            return _enforce_tensor(self.signature.inputs, data)
        if self._all_double:
            fast = self._fast_frame(data) if isinstance(data, pd.DataFrame) else self._fast_records(data)
            if fast is not None:
                return fast
        return _enforce_frame(self.signature, as_frame(data))

    def _fast_frame(self, frame: pd.DataFrame) -> pd.DataFrame | None:
        if not frame.columns.equals(self._index):
            return None
        values = frame.to_numpy()
        if values.dtype.kind != "f":
            return None
        checked = values if self._all_refused else values[:, self._refused]
        return None if np.isnan(checked).any() else frame

    def _fast_records(self, data: Any) -> pd.DataFrame | None:
        records = [data] if isinstance(data, Mapping) else data
        if not self._all_refused or not isinstance(records, list):
            return None
        try:
            if not all(isinstance(r, Mapping) and len(r) == len(self._names) for r in records):
                return None
            values = np.array([[r[name] for name in self._names] for r in records], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            return None
        if np.isnan(values).any():
            return None  # the general path names the rows
        return pd.DataFrame(values, columns=self._index, copy=False)


def enforce(signature: Signature, data: Any) -> pd.DataFrame | np.ndarray:
    """Check `data` against the input schema (see InputChecker)."""
    return InputChecker(signature)(data)


def _enforce_frame(signature: Signature, frame: pd.DataFrame) -> pd.DataFrame:
    assert isinstance(signature.inputs, tuple)
    problems: list[str] = []
    expected = {c.name: c for c in signature.inputs}
    missing = [name for name in expected if name not in frame.columns]
    if missing:
        problems.append(f"missing columns {missing}")
    extra = [name for name in frame.columns if name not in expected]
    if extra and signature.extra_columns == "error":
        problems.append(f"unexpected columns {[str(e) for e in extra]} (the model was logged without them)")
    converted: dict[str, pd.Series] = {}
    for spec in signature.inputs:
        if spec.name in frame.columns:
            series, problem = _conform(frame[spec.name], spec)
            if problem:
                problems.append(problem)
            converted[spec.name] = series
    if problems:
        raise SignatureMismatch(problems)
    return pd.DataFrame(converted, index=frame.index)


def _conform(series: pd.Series, spec: ColumnSpec) -> tuple[pd.Series, str | None]:
    if not spec.nullable and series.isna().any():
        rows = series.index[series.isna()].tolist()[:5]
        return (
            series,
            f"column {spec.name!r} has missing values (rows {rows}) but the model does not accept them",
        )
    try:
        actual = column_type(series) if len(series.dropna()) or series.dtype.kind != "O" else spec.type
    except InvalidInput as exc:
        return series, str(exc)
    if actual == spec.type:
        return series, None
    if actual in _SAFE_FROM.get(spec.type, set()):
        if spec.type == "double":
            return series.astype("float64"), None
        if spec.type == "string":
            return series.astype(object), None
        return series.astype(pd.CategoricalDtype(list(spec.categories or ()))), None
    if spec.type == "integer" and actual == "double":
        values = series.dropna()
        if (values == values.round()).all():
            return series.astype("Int64" if spec.nullable else "int64"), None
        return series, f"column {spec.name!r} has fractional values where the model expects integers"
    return series, f"column {spec.name!r} is {actual} where the model expects {spec.type}"


def _enforce_tensor(spec: TensorSpec, data: Any) -> np.ndarray:
    array = data.to_numpy() if isinstance(data, pd.DataFrame) else np.asarray(data)
    if array.ndim != len(spec.shape):
        raise SignatureMismatch(
            [f"input has {array.ndim} dimensions where the model expects {len(spec.shape)}"]
        )
    for axis, (got, want) in enumerate(zip(array.shape, spec.shape, strict=True)):
        if want is not None and got != want:
            raise SignatureMismatch([f"input dimension {axis} is {got} where the model expects {want}"])
    target = np.dtype(spec.dtype)
    if array.dtype != target:
        if not np.can_cast(array.dtype, target, casting="same_kind"):
            raise SignatureMismatch([f"input dtype {array.dtype} cannot be cast safely to {target}"])
        array = array.astype(target)
    return array
