"""mf.save / mf.load: formats, atomic writes and every error path."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

import msgflux as mf
from msgflux.errors import SerializationError, StateValueError

VALUES = {
    "text": 'héllo ✓ "quoted" \n newline',
    "int": -7,
    "float": 1.5,
    "bool": False,
    "list": [1, "two", [3.0], {"four": 4}],
    "dict": {"nested.key": {"deeper": ["x"]}, "": "empty key inside"},
    "empty_list": [],
    "empty_dict": {},
    "analyzer.instructions": "dotted",
}


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("suffix", [".toml", ".json", ".TOML", ".Json"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"state{suffix}"
    mf.save(VALUES, path)
    assert mf.load(path) == VALUES
    assert mf.load(str(path)) == VALUES
    assert _files(tmp_path) == [path.name]


def test_json_round_trip_with_none_and_big_ints(tmp_path: Path) -> None:
    state = {"a": None, "b": [None, {"c": None}], "big": 2**80}
    mf.save(state, str(tmp_path / "s.json"))
    assert mf.load(tmp_path / "s.json") == state


def test_json_is_readable_utf8(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    mf.save({"a.b": "é", "n": [1]}, path)
    text = path.read_text(encoding="utf-8")
    assert text == '{\n  "a.b": "é",\n  "n": [\n    1\n  ]\n}\n'


def test_toml_dotted_keys_are_quoted(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    mf.save({"analyzer.instructions": "Be brief", "plain": 1}, path)
    text = path.read_text(encoding="utf-8")
    assert '"analyzer.instructions" = "Be brief"' in text
    assert mf.load(path) == {"analyzer.instructions": "Be brief", "plain": 1}


def test_save_a_module(tmp_path: Path, pipeline) -> None:
    mf.save(pipeline, tmp_path / "p.json")
    assert mf.load(tmp_path / "p.json") == pipeline.state_dict()


# -- save errors: nothing written ---------------------------------------------------


def test_unknown_suffix(tmp_path: Path) -> None:
    for name in ("state.yaml", "state"):
        with pytest.raises(SerializationError, match=r"use one of \.json, \.toml"):
            mf.save({"a": 1}, tmp_path / name)
        with pytest.raises(SerializationError, match="not a supported suffix"):
            mf.load(tmp_path / name)
    assert _files(tmp_path) == []


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SerializationError, match="folder .*missing.* does not exist"):
        mf.save({"a": 1}, tmp_path / "missing" / "s.json")
    assert _files(tmp_path) == []


def test_target_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "d.json").mkdir()
    with pytest.raises(SerializationError, match="is a directory"):
        mf.save({"a": 1}, tmp_path / "d.json")
    with pytest.raises(SerializationError, match="directory"):
        mf.load(tmp_path / "d.json")
    assert _files(tmp_path) == ["d.json"]


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_top_level_must_be_a_mapping(tmp_path: Path, suffix: str) -> None:
    with pytest.raises(SerializationError, match="cannot save a list.*must be a mapping"):
        mf.save([1, 2], tmp_path / f"s{suffix}")  # type: ignore[arg-type]
    assert _files(tmp_path) == []


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_bad_values_are_refused_with_key_and_type(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"s{suffix}"
    with pytest.raises(StateValueError, match=r"'cfg\[1\]'.*type set"):
        mf.save({"ok": 1, "cfg": [1, {2}]}, path)
    with pytest.raises(StateValueError, match="'x'.*NaN"):
        mf.save({"x": float("nan")}, path)
    with pytest.raises(StateValueError, match="inf"):
        mf.save({"x": [float("-inf")]}, path)
    with pytest.raises(StateValueError, match="dict key 1"):
        mf.save({"x": {1: "a"}}, path)
    with pytest.raises(StateValueError, match="non-empty"):
        mf.save({"": 1}, path)
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    ("value", "where"),
    [
        (None, "key 'a"),
        ([1, None], r"key 'a\[1\]"),
        ({"k": [{"z": None}]}, r"a\['k'\]\[0\]\['z'\]"),
    ],
)
def test_toml_refuses_none_and_suggests_json(tmp_path: Path, value, where) -> None:
    with pytest.raises(SerializationError, match=where + r"['\"] is None.*\.json"):
        mf.save({"a": value}, tmp_path / "s.toml")
    assert _files(tmp_path) == []


def test_toml_refuses_integers_beyond_64_bits(tmp_path: Path) -> None:
    mf.save({"a": 2**63 - 1, "b": -(2**63)}, tmp_path / "ok.toml")
    with pytest.raises(SerializationError, match="64 bits.*json"):
        mf.save({"a": 2**63}, tmp_path / "s.toml")
    assert _files(tmp_path) == ["ok.toml"]


def test_lone_surrogate_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SerializationError, match="'bad'.*not valid Unicode"):
        mf.save({"ok": "x", "bad": "\ud800"}, tmp_path / "s.json")
    assert _files(tmp_path) == []


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_failed_save_leaves_existing_file_intact(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"s{suffix}"
    mf.save({"a": "old"}, path)
    before = path.read_bytes()
    with pytest.raises((SerializationError, StateValueError)):
        mf.save({"a": None if suffix == ".toml" else object()}, path)
    with pytest.raises(StateValueError):
        mf.save({"a": "new", "b": object()}, path)
    assert path.read_bytes() == before
    assert _files(tmp_path) == [path.name]


def test_crash_during_write_removes_temp_file_and_keeps_old(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "s.json"
    mf.save({"a": "old"}, path)

    def crash(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(SerializationError, match="No space left"):
        mf.save({"a": "new"}, path)
    monkeypatch.undo()
    assert mf.load(path) == {"a": "old"}
    assert _files(tmp_path) == ["s.json"]


def test_interrupt_during_write_removes_temp_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "s.toml"

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        mf.save({"a": 1}, path)
    monkeypatch.undo()
    assert _files(tmp_path) == []


def test_existing_file_mode_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("{}")
    os.chmod(path, 0o600)
    mf.save({"a": 1}, path)
    assert path.stat().st_mode & 0o777 == 0o600
    mf.save({"a": 1}, tmp_path / "new.json")
    assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o644


# -- load errors ------------------------------------------------------------------


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SerializationError, match=r"nope\.toml: no such file"):
        mf.load(tmp_path / "nope.toml")


def test_malformed_toml_names_file_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.toml", 'a = 1\nb = "unterminated\n')
    with pytest.raises(SerializationError, match=r"bad\.toml: malformed TOML.*line 2, column \d+"):
        mf.load(path)


def test_malformed_json_names_file_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.json", '{\n  "a": 1,\n  "b": \n}')
    with pytest.raises(SerializationError, match=r"bad\.json: malformed JSON at line 4, column 1"):
        mf.load(path)


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": [Infinity]}', '{"a": -Infinity}'])
def test_json_nan_and_infinity_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(SerializationError, match="not allowed"):
        mf.load(_write(tmp_path, "s.json", text))


def test_json_overflowing_float_refused(tmp_path: Path) -> None:
    with pytest.raises(SerializationError, match="1e400 is too large"):
        mf.load(_write(tmp_path, "s.json", '{"a": 1e400}'))


def test_json_duplicate_keys_refused(tmp_path: Path) -> None:
    with pytest.raises(SerializationError, match="duplicate key 'a'"):
        mf.load(_write(tmp_path, "s.json", '{"b": {"a": 1, "a": 2}}'))


@pytest.mark.parametrize(
    ("text", "kind"), [("[1, 2]", "array"), ('"x"', "string"), ("3", "number"), ("null", "null")]
)
def test_json_top_level_must_be_an_object(tmp_path: Path, text: str, kind: str) -> None:
    with pytest.raises(SerializationError, match=f"top level is a {kind}.*must hold an object"):
        mf.load(_write(tmp_path, "s.json", text))


def test_toml_dates_are_not_state_values(tmp_path: Path) -> None:
    with pytest.raises(SerializationError, match=r"s\.toml.*'when'.*type date"):
        mf.load(_write(tmp_path, "s.toml", "when = 2024-01-01\n"))


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(SerializationError, match="not valid UTF-8"):
        mf.load(path)


def test_json_deeply_nested_refused(tmp_path: Path) -> None:
    depth = 200
    path = _write(tmp_path, "s.json", '{"a": ' + "[" * depth + "]" * depth + "}")
    with pytest.raises(SerializationError, match="deeper than|nested too deeply"):
        mf.load(path)


def test_no_pickle_or_eval_anywhere() -> None:
    import msgflux.serialization as serialization

    source = Path(serialization.__file__).read_text(encoding="utf-8")
    for word in ("import pickle", "eval(", "exec(", "marshal"):
        assert word not in source


def test_json_written_by_others_loads(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.json", json.dumps({"a.b": [1, None]}))
    assert mf.load(path) == {"a.b": [1, None]}


# -- missing paths are FileNotFoundError too -------------------------------------------


def test_missing_file_is_both_file_not_found_and_serialization_error(tmp_path: Path) -> None:
    from msgflux.errors import StateFileNotFoundError

    missing = tmp_path / "nope.json"
    for caught in (FileNotFoundError, SerializationError, OSError, mf.MsgfluxError):
        with pytest.raises(caught) as info:
            mf.load(missing)
        error = info.value
        assert isinstance(error, StateFileNotFoundError)
        assert str(error) == f"cannot load {missing}: no such file"
        assert error.filename == str(missing) and error.errno == errno.ENOENT
    try:  # the idiom code written for open() / json / torch.load uses
        mf.load(str(missing))
    except FileNotFoundError:
        pass


def test_missing_folder_on_save_is_both_file_not_found_and_serialization_error(
    tmp_path: Path,
) -> None:
    target = tmp_path / "missing" / "state.toml"
    for caught in (FileNotFoundError, SerializationError):
        with pytest.raises(caught, match="folder .* does not exist"):
            mf.save({"a": 1}, target)
    assert not (tmp_path / "missing").exists()


def test_other_load_errors_are_not_file_not_found(tmp_path: Path) -> None:
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(SerializationError) as info:
        mf.load(tmp_path / "folder.json")
    assert not isinstance(info.value, FileNotFoundError)
