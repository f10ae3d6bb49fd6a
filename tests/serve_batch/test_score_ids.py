"""ID column validation: integer-like values pass, anything else names its row."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from movierec.serve_batch._ids import convert_id_column, convert_string_id_column
from movierec.serve_batch.errors import DataError

IDS = st.integers(min_value=-(2**62), max_value=2**62)


def convert(arr: pa.Array, offset: int = 0) -> np.ndarray:
    return convert_id_column(
        arr, source="pairs.csv", name="movie_id", kind="movie", row_offset=offset
    )


def error_row(exc: pytest.ExceptionInfo) -> int:
    return int(re.search(r"row (\d+) \(0-based", str(exc.value)).group(1))


@settings(max_examples=60, deadline=None)
@given(st.lists(IDS, min_size=1, max_size=50), st.sampled_from(["int64", "int32", "uint32"]))
def test_integer_types_pass_through(values: list[int], type_name: str) -> None:
    if type_name != "int64":
        values = [v % 2**31 for v in values]
    got = convert(pa.array(values, type=getattr(pa, type_name)()))
    assert got.dtype == np.int64 and got.tolist() == values


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-(2**52), 2**52), min_size=1, max_size=50))
def test_integral_floats_are_accepted(values: list[int]) -> None:
    assert convert(pa.array([float(v) for v in values])).tolist() == values


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(-(2**52), 2**52), min_size=1, max_size=50),
    st.sampled_from(["{}", " {} ", "+{}", "{}.0", "{}.000"]),
)
def test_integer_text_is_accepted(values: list[int], fmt: str) -> None:
    text = [fmt.format(v) if not (fmt.startswith("+") and v < 0) else str(v) for v in values]
    assert convert(pa.array(text)).tolist() == values


BAD_TEXT = st.sampled_from(["abc", "", " ", "1.5", "1e3", "12a", "NaN", "--3", "0x10", "1,000"])


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(0, 10**9), min_size=1, max_size=40),
    st.data(),
    BAD_TEXT,
    st.integers(0, 10_000),
)
def test_non_integer_text_is_rejected_at_the_right_row(values, data, bad, offset) -> None:
    row = data.draw(st.integers(0, len(values)), label="row")
    text = [str(v) for v in values]
    text.insert(row, bad)
    with pytest.raises(
        DataError, match=r"pairs\.csv: column 'movie_id' row \d+ .*expected an integer movie ID"
    ) as exc:
        convert(pa.array(text), offset)
    assert error_row(exc) == offset + row


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 10**6), min_size=1, max_size=40),
    st.data(),
    st.sampled_from([0.5, -1.25, float("nan"), float("inf"), 1e300]),
)
def test_non_integral_floats_are_rejected_at_the_right_row(values, data, bad) -> None:
    row = data.draw(st.integers(0, len(values)), label="row")
    floats = [float(v) for v in values]
    floats.insert(row, bad)
    with pytest.raises(DataError, match="expected an integer movie ID") as exc:
        convert(pa.array(floats))
    assert error_row(exc) == row


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=40), st.data())
def test_nulls_are_rejected_at_the_first_null_row(values, data) -> None:
    row = data.draw(st.integers(0, len(values)), label="row")
    with_null: list[int | None] = list(values)
    with_null.insert(row, None)
    with_null.append(None)
    with pytest.raises(DataError, match="null") as exc:
        convert(pa.array(with_null, pa.int64()), 100)
    assert error_row(exc) == 100 + row


def test_message_shape() -> None:
    with pytest.raises(DataError) as exc:
        convert(pa.array(["1", "2", "3", "abc"]))
    assert str(exc.value) == (
        "pairs.csv: column 'movie_id' row 3 (0-based data row): expected an integer movie ID, "
        "got 'abc'"
    )


def test_empty_text_is_called_empty() -> None:
    with pytest.raises(DataError, match="row 1 .*got an empty value"):
        convert(pa.array(["1", ""]))


def test_other_types_are_rejected_with_the_type() -> None:
    with pytest.raises(DataError, match="column has type bool"):
        convert(pa.array([True, False]))


def test_dictionary_and_chunked_columns_are_accepted() -> None:
    dict_arr = pa.array(["10", "20", "10"]).dictionary_encode()
    assert convert(dict_arr).tolist() == [10, 20, 10]
    chunked = pa.chunked_array([pa.array([1, 2]), pa.array([3])])
    assert convert(chunked).tolist() == [1, 2, 3]


def test_out_of_range_values_are_rejected() -> None:
    with pytest.raises(DataError, match="row 1 .*outside int64"):
        convert(pa.array(["1", "99999999999999999999"]))
    with pytest.raises(DataError, match="row 0 .*larger than int64"):
        convert(pa.array([2**64 - 1], pa.uint64()))


# --- string IDs -----------------------------------------------------------------------------


def convert_text(arr: pa.Array, offset: int = 0) -> pa.Array:
    return convert_string_id_column(
        arr, source="pairs.parquet", name="sku", kind="movie", row_offset=offset
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=40),
    st.sampled_from(["string", "large_string", "dictionary", "chunked"]),
)
def test_string_ids_are_kept_exactly_in_every_layout(values: list[str], layout: str) -> None:
    arr = pa.array(values, pa.large_string() if layout == "large_string" else pa.string())
    if layout == "dictionary":
        arr = arr.dictionary_encode()
    if layout == "chunked":
        arr = pa.chunked_array([arr[:1], arr[1:]])
    got = convert_text(arr)
    assert got.type == pa.string() and got.to_pylist() == values


def test_integer_columns_are_string_ids_as_decimal_text() -> None:
    assert convert_text(pa.array([7, -3, 0], pa.int32())).to_pylist() == ["7", "-3", "0"]


@pytest.mark.parametrize(
    ("arr", "row", "got"),
    [
        (pa.array(["a", None, "b"]), 1, "got a null (missing) value"),
        (pa.array(["a", "b", ""]), 2, "got an empty string"),
        # a dictionary whose values hold the null, and an index pointing at it
        (pa.DictionaryArray.from_arrays([0, 0, 1], pa.array(["a", None])), 2, "got a null"),
        (pa.array(["a", "", "b"]).dictionary_encode(), 1, "got an empty string"),
    ],
)
def test_null_and_empty_string_ids_name_their_row(arr: pa.Array, row: int, got: str) -> None:
    with pytest.raises(DataError) as exc:
        convert_text(arr, 10)
    assert str(exc.value).startswith(
        f"pairs.parquet: column 'sku' row {10 + row} (0-based data row): expected a string "
        f"movie ID, {got}"
    )


def test_other_types_are_refused_for_string_ids() -> None:
    with pytest.raises(DataError, match="expected string movie IDs, but the column has type bool"):
        convert_text(pa.array([True]))
