"""The UNIPEN 1.0 reader's second form: the train_r01_v07 distribution's section 1a (isolated
digits), label files whose segments point into included pen data (tests/test_datasets.py tests
the UCI pen-digits form it reads too)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from core.unipen import UnipenError, parse_labels, read_unipen_1a

PEN = """.WRITER_ID w1
.COORD T X Y
.PEN_DOWN
0 0 0
1 10 0
2 10 10
.PEN_UP
.PEN_DOWN
3 0 0
.PEN_UP
5 3 3
6 4 4
.PEN_DOWN
7 0 0
8 0 5
9 3 5
10 3 9
.PEN_UP
"""


def _labels(text: str, files: dict[str, str]) -> tuple[list[dict], Counter]:
    return parse_labels(text, files.__getitem__, "test.dat")


def test_delineations_pick_components_ranges_and_points():
    files = {"pen.dat": PEN}
    text = ('.INCLUDE pen.dat\n.SEGMENT CHARACTER 0 ? "1"\n.SEGMENT CHARACTER 0-2 OK "2"\n'
            '.SEGMENT CHARACTER 0:1-3:2 OK "3"\n.SEGMENT CHARACTER 3:1-3:3,0 ? "4"\n'
            '.SEGMENT CHARACTER 3-3 "5"\n')
    digits, skipped = _labels(text, files)
    assert not skipped
    assert [d["label"] for d in digits] == [1, 2, 3, 4, 5]
    first = [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0)]
    last = [(0.0, 0.0), (0.0, 5.0), (3.0, 5.0), (3.0, 9.0)]
    assert digits[0]["strokes"] == [first]
    # component 1 is the one-point pen-down block, 2 the pen-up block (hovering): counted, not drawn
    assert digits[1]["strokes"] == [first, [(0.0, 0.0)]]
    assert digits[2]["strokes"] == [first[1:], [(0.0, 0.0)], last[:3]]
    assert digits[3]["strokes"] == [last[1:], first]
    assert digits[4]["strokes"] == [last] and digits[4]["quality"] == ""
    assert digits[0]["writer"] == "w1" and digits[1]["source"] == "test.dat:3"
    assert all(isinstance(v, float) for d in digits for s in d["strokes"] for p in s for v in p)


def test_empty_blocks_are_not_components_and_includes_nest():
    files = {
        "doc": ".VERSION 1.0\n.COORD X Y\n.PAD prose that names\n    .PEN_DOWN and .PEN_UP.\n",
        "pen": ".INCLUDE doc\n.WRITER_ID  Ann  Lee \n.PEN_DOWN\n.PEN_UP\n"
               ".PEN_DOWN\n\t1\t2\n\t3\t4\n.PEN_DOWN\n5 6\n7 8\n.START_BOX\n.COMMENT text\n  9 9\n",
    }
    digits, skipped = _labels('.INCLUDE pen\n.SEGMENT CHARACTER 1 ? "7"\n', files)
    assert [d["strokes"] for d in digits] == [[[(5.0, 6.0), (7.0, 8.0)]]] and not skipped
    assert digits[0]["writer"] == "Ann Lee"


def test_the_writer_is_the_one_of_the_data_else_of_the_label_file_else_its_name():
    files = {"a": ".WRITER_ID a1\n.PEN_DOWN\n0 0\n1 1\n",
             "b": ".WRITER_ID b1\n.PEN_DOWN\n0 0\n1 1\n", "c": ".PEN_DOWN\n0 0\n1 1\n"}
    digits, _ = _labels('.INCLUDE a\n.INCLUDE b\n.SEGMENT CHARACTER 0 ? "1"\n'
                        '.SEGMENT CHARACTER 1 ? "2"\n', files)
    assert [d["writer"] for d in digits] == ["a1", "b1"]
    digits, _ = _labels('.INCLUDE c\n.WRITER_ID late\n.SEGMENT CHARACTER 0 ? "1"\n', files)
    assert digits[0]["writer"] == "late"
    digits, _ = _labels('.INCLUDE c\n.SEGMENT CHARACTER 0 ? "1"\n', files)
    assert digits[0]["writer"] == "test.dat"


def test_segments_without_a_drawable_digit_are_counted_not_returned():
    files = {"pen": ".PEN_DOWN\n5 5\n.PEN_UP\n1 1\n2 2\n.PEN_DOWN\n4 4\n4 4\n.PEN_DOWN\n0 0\n0 9\n"}
    text = """.INCLUDE pen
.SEGMENT TEXT 0-3 ? "hello"
.SEGMENT CHARACTER 0 ? "4"
.SEGMENT CHARACTER 1 ? "4"
.SEGMENT CHARACTER 2 ? "4"
.SEGMENT CHARACTER 3 ? "."
.SEGMENT CHARACTER 3 ? "42"
.SEGMENT CHARACTER 3 BAD "1"
.SEGMENT CHARACTER 4 ? "1"
.SEGMENT CHARACTER 3:1-3:5 ? "1"
.SEGMENT CHARACTER 3 ? ""
.SEGMENT CHARACTER 3 ? "1"
"""
    digits, skipped = _labels(text, files)
    assert [d["strokes"] for d in digits] == [[[(0.0, 0.0), (0.0, 9.0)]]]
    assert skipped == Counter({"other level": 1, "fewer than 2 points": 1, "no pen-down points": 1,
                               "no extent": 1, "not a digit": 3, "marked BAD": 1,
                               "delineation out of range": 2})


@pytest.mark.parametrize("text, message", [
    ('.INCLUDE pen\n.SEGMENT CHARACTER 1--2 ? "1"\n', "test.dat:2: cannot read the delineation"),
    ('.INCLUDE pen\n.SEGMENT CHARACTER ? "1"\n', "test.dat:2: cannot read the delineation"),
    (".INCLUDE bad\n", "bad: line 3: cannot read '1 x'"),
    (".INCLUDE loop\n", "loop: line 1: .INCLUDE 'loop' is empty or includes itself"),
    (".COORD T P\n", "test.dat: line 1: .COORD 'T P' names no X and Y"),
])
def test_unreadable_text_is_an_error_naming_file_and_line(text, message):
    files = {"pen": ".PEN_DOWN\n0 0\n1 1\n", "bad": ".PEN_DOWN\n0 0\n1 x\n",
             "loop": ".INCLUDE loop\n"}
    with pytest.raises(UnipenError) as caught:
        _labels(text, files)
    assert str(caught.value).startswith(message)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_walker_reads_sites_and_makes_writers_unique_across_them(tmp_path):
    pen = ".WRITER_ID 0\n.PEN_DOWN\n0 0\n5 9\n.PEN_UP\n.PEN_DOWN\n1 1\n.PEN_UP\n"
    root = _tree(tmp_path, {
        "include/aaa/doc": ".COORD X Y\n", "include/aaa/data/w.dat": pen, "include/bbb/w.dat": pen,
        "data/1a/aaa/sub/w.dat": '.INCLUDE aaa/doc\n.INCLUDE aaa/data/w.dat\n'
                                 '.SEGMENT CHARACTER 0 ? "3"\n.SEGMENT CHARACTER 1 ? "3"\n',
        "data/1a/bbb/w.dat": '.INCLUDE bbb/w.dat\n.SEGMENT CHARACTER 0 OK "8"\n',
    })
    digits, summary = read_unipen_1a(root)
    assert [(d["site"], d["writer"], d["label"]) for d in digits] == [("aaa", "aaa/0", 3),
                                                                      ("bbb", "bbb/0", 8)]
    assert digits[0]["source"] == "data/1a/aaa/sub/w.dat:3"
    assert summary == {"files": 2, "digits": 2, "writers": 2, "skipped": {"fewer than 2 points": 1},
                       "sites": {"aaa": {"digits": 1, "skipped": 1, "writers": 1},
                                 "bbb": {"digits": 1, "skipped": 0, "writers": 1}}}


@pytest.mark.parametrize("files, message", [
    ({}, "no label files"),
    ({"data/1a/a/x.dat": ".INCLUDE a/none\n"}, "x.dat: line 1: cannot read include/a/none"),
    ({"data/1a/a/x.dat": ".INCLUDE ../secret\n"}, "leaves the include folder"),
])
def test_the_walker_names_what_is_missing(tmp_path, files, message):
    with pytest.raises(UnipenError, match=message):
        read_unipen_1a(_tree(tmp_path, files))


def test_real_unipen_1a_section(data_root):
    digits, summary = read_unipen_1a(data_root / "unipen" / "train_r01_v07")
    assert summary["files"] == 420 and summary["writers"] == 121
    assert summary["digits"] == 13379 - 3 and summary["skipped"] == {"no extent": 3}
    per_site = {site: counts["digits"] for site, counts in summary["sites"].items()}
    assert per_site == {"apa": 692, "apb": 2033, "app": 1046, "art": 170, "cea": 7, "ceb": 16,
                        "gmd": 1145, "ibm": 1568, "lou": 7, "pri": 78, "syn": 4554, "uqb": 598,
                        "val": 1462}
    assert set(Counter(d["label"] for d in digits)) == set(range(10))
