import pytest

from iaforge.core.fsio import atomic_dir, read_jsonl, write_json, write_jsonl
from iaforge.core.errors import ValidationError


def test_atomic_dir_failure_leaves_nothing(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "half.json").write_text("{")
            raise RuntimeError("stage died")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_previous_output(tmp_path):
    target = tmp_path / "out"
    for v in ("old", "new"):
        with atomic_dir(target) as tmp:
            (tmp / "v.txt").write_text(v)
    assert (target / "v.txt").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_json_is_byte_stable(tmp_path):
    write_json(tmp_path / "a.json", {"b": 1, "a": [1, 2]})
    write_json(tmp_path / "b.json", {"a": [1, 2], "b": 1})
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_bad_jsonl_names_file_and_line(tmp_path):
    p = tmp_path / "x.jsonl"
    write_jsonl(p, [{"a": 1}])
    p.write_text(p.read_text() + "{oops\n")
    with pytest.raises(ValidationError, match=r"x.jsonl.*line 2"):
        read_jsonl(p)
