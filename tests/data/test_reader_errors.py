"""Every dataset reader names the file and line of a broken row, of a row
whose file is missing and of bytes that are not UTF-8.

One table: each case writes a tiny valid dataset with one fault on a known
line (line 3 unless said otherwise) and checks that the error reads
`path:line: ...` with a word of what is wrong. Faults without a line (a
missing table file, a semantic JSON error) name the file and the entry.
"""

import dataclasses
import os
import pathlib

import pytest
import tensorflow as tf

from mmzoo.data import ctr, glove, textfile, vqa
from mmzoo.data import prepare_clips as pc
from mmzoo.data.av_clips import read_av_clips
from mmzoo.data.captions import read_flickr8k, read_image_text_pairs
from mmzoo.data.image_report import read_image_report
from mmzoo.data.image_text_labels import read_image_text_labels
from tests.data.test_ctr import ITEMS, USERS, _write_grouplens
from tests.data.test_vqa import _folder

LATIN1 = b"caf\xe9"  # "café" in latin-1: not UTF-8


@dataclasses.dataclass
class Case:
    read: object  # () -> anything; raises
    where: str  # expected in the message: "path:line" or "path: entry"
    what: str  # a word of what is wrong
    error: type = ValueError


def _write(path, lines):
    """Writes `lines` (str or bytes) to `path`, one a line."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        for line in lines:
            f.write(line if isinstance(line, bytes) else line.encode())
            f.write(b"\n")
    return path


def _touch(path):
    return _write(path, [b"\x89PNG"])  # the readers never decode


def _at3(lines, line3):
    return [*lines[:2], line3, *lines[3:]]


# ------------------------------------------------------------ layouts --


def _image_report(tmp, line3):
    for name in ("a.png", "b.png"):
        _touch(os.path.join(tmp, name))
    lines = ["image,report,x,y", "a.png,fine,0,1", "b.png,clear,1,0"]
    index = _write(os.path.join(tmp, "index.csv"), _at3(lines, line3))
    return lambda: read_image_report(tmp), index


def _image_text_labels(tmp, line3):
    for name in ("a.png", "b.png"):
        _touch(os.path.join(tmp, name))
    lines = ["image,text,label,target,split", "a.png,a cat,cat,1.5,train"]
    index = _write(os.path.join(tmp, "index.csv"), [*lines, line3])
    return lambda: read_image_text_labels(tmp), index


def _av_clips(tmp, line3):
    for name in ("a", "b"):
        _touch(os.path.join(tmp, name, "f0.png"))
        _touch(os.path.join(tmp, f"{name}.wav"))
    lines = ["frames,audio,alarm,split", "a,a.wav,1,train"]
    index = _write(os.path.join(tmp, "index.csv"), [*lines, line3])
    return lambda: read_av_clips(tmp), index


def _flickr_csv(tmp, line3):
    for name in ("1.jpg", "2.jpg"):
        _touch(os.path.join(tmp, "Images", name))
    lines = ["image,caption", "1.jpg,A dog runs .", "2.jpg,A cat .", "1.jpg,x"]
    path = _write(os.path.join(tmp, "captions.txt"), _at3(lines, line3))
    return lambda: read_flickr8k(tmp), path


def _flickr_token(tmp, line3):
    for name in ("1.jpg", "2.jpg"):
        _touch(os.path.join(tmp, "Images", name))
    lines = ["1.jpg#0\tA dog runs .", "1.jpg#1\tA dog .", "2.jpg#0\tA cat ."]
    path = _write(os.path.join(tmp, "Flickr8k.token.txt"), _at3(lines, line3))
    return lambda: read_flickr8k(tmp), path


def _image_text_pairs(tmp, line3):
    _touch(os.path.join(tmp, "sub", "x.png"))
    lines = ["a dog", "two dogs", "a dog again"]
    path = _write(os.path.join(tmp, "sub", "x.txt"), _at3(lines, line3))
    return lambda: read_image_text_pairs(tmp), path


QUESTION_30 = b' {"image_id": 3, "question": "How many %s?", "question_id": 30}'


def _vqa(tmp, line3=QUESTION_30 % b"dogs", images=("9.jpg", "3.png")):
    folder = _folder(pathlib.Path(tmp), images=images)
    lines = [
        '{"questions": [',
        ' {"image_id": 9, "question": "What color?", "question_id": 90},',
        line3 + b",",
        ' {"image_id": 9, "question": "Is it a cat?", "question_id": 91}',
        "]}",
    ]
    path = _write(os.path.join(folder, "questions.json"), lines)
    return lambda: vqa.read_vqa(folder), path


GLOVE = ["the 0.1 0.2", "dog 0.3 0.4", "cafe 0.5 0.6", "cat 0.7 0.8"]


def _glove(tmp, line3):
    path = _write(os.path.join(tmp, "glove.txt"), _at3(GLOVE, line3))
    return lambda: glove.read_glove(path, ["the", "cafe", "cat"]), path


def _glove_words(tmp, line3):
    path = _write(os.path.join(tmp, "glove.txt"), _at3(GLOVE, line3))
    return lambda: glove.glove_words(path, 10), path


def _clip_labels(tmp, line3):
    src = os.path.join(tmp, "src")
    for name in ("alarm/a.mp4", "quiet/b.mp4", "top.mp4"):
        _write(os.path.join(src, name), [])  # never decoded: errors first
    lines = ["video,labels", "alarm/a.mp4,siren", "quiet/b.mp4,", "top.mp4,x"]
    path = _write(os.path.join(tmp, "labels.csv"), _at3(lines, line3))
    dst = os.path.join(tmp, "av")
    return lambda: pc.prepare_clips(src, dst, labels=path), path


RATINGS = ["1\t1\t5\t881250949", "1\t2\t3\t881250949", "2\t3\t4\t881250949"]


def _grouplens(tmp, file, line3=None):
    parts = {"u.user": USERS, "u.item": ITEMS, "u.data": RATINGS}
    if line3 is not None:
        parts[file] = _at3(parts[file], line3)
    parts = dict(zip(("users", "items", "ratings"), parts.values()))
    folder = _write_grouplens(pathlib.Path(tmp, "ml-100k"), **parts)
    return lambda: ctr.read_movielens(folder), os.path.join(folder, file)


RECBOLE = {
    "user": [
        "user_id:token\tage:token\tgender:token\toccupation:token\t"
        "zip_code:token",
        "1\t24\tM\ttechnician\t85711",
        "2\t53\tF\tother\t94043",
    ],
    "item": [
        "item_id:token\tmovie_title:token_seq\trelease_year:token\t"
        "class:token_seq",
        "1\tToy Story\t1995\tAnimation Comedy",
        "2\tSociety\t1995\tDrama",
    ],
    "inter": [
        "user_id:token\titem_id:token\trating:float\ttimestamp:float",
        "1\t1\t5\t881250949",
        "2\t2\t3\t881250949",
        "1\t2\t4\t881250949",
    ],
}


def _recbole(tmp, suffix, lines):
    for name, content in RECBOLE.items():
        content = lines if name == suffix else content
        _write(os.path.join(tmp, f"ml-100k.{name}"), content)
    path = os.path.join(tmp, f"ml-100k.{suffix}")
    return lambda: ctr.read_movielens(tmp), path


CRITEO = "\t".join(["1", *["7"] * 13, *["68fd1e64"] * 26])


def _criteo(tmp, line3):
    lines = [CRITEO, CRITEO.replace("1", "0", 1), line3, CRITEO]
    path = _write(os.path.join(tmp, "day_0.tsv"), lines)

    def read():
        for split in ctr.read_criteo(path).splits.values():
            for _ in split:
                pass

    return read, path


def _criteo_line(index, value):
    fields = CRITEO.split("\t")
    fields[index] = value
    return "\t".join(fields)


# -------------------------------------------------------------- cases --


def _line3(layout, line3, what, error=ValueError):
    def case(tmp):
        read, path = layout(tmp, line3)
        return Case(read, f"{path}:3: ", what, error)

    return case


def _vqa_missing_image(tmp):
    read, path = _vqa(tmp, images=("9.jpg",))
    return Case(read, f"{path}: entry 1 (question_id 30)", "no image file")


def _vqa_semantic(tmp):
    line3 = b' {"image_id": 3, "question_id": 30}'
    read, path = _vqa(tmp, line3)
    return Case(read, f"{path}: entry 1 (question_id 30)", "'question'")


def _grouplens_missing_user_file(tmp):
    read, path = _grouplens(tmp, "u.user")
    os.remove(path)
    return Case(read, path, "not found")


def _grouplens_line3(file, line3, what):
    def case(tmp):
        read, path = _grouplens(tmp, file, line3)
        return Case(read, f"{path}:3: ", what)

    return case


def _recbole_case(suffix, line, content, what):
    def case(tmp):
        lines = list(RECBOLE[suffix])
        lines[line - 1] = content
        read, path = _recbole(tmp, suffix, lines)
        return Case(read, f"{path}:{line}: ", what)

    return case


def _recbole_missing_user_file(tmp):
    read, path = _recbole(tmp, "user", RECBOLE["user"])
    os.remove(path)
    return Case(read, path, "not found")


GENRES_BAD = ITEMS[2].rsplit("|", 1)[0] + "|x"
CRITEO_ERROR = tf.errors.InvalidArgumentError  # raised while iterating

CASES = {
    # image-report: index.csv
    "image-report/label": _line3(
        _image_report, "b.png,clear,1,2", "must be 0 or 1"
    ),
    "image-report/fields": _line3(
        _image_report, "b.png,clear,1", "expected 4 fields"
    ),
    "image-report/empty-image": _line3(
        _image_report, ",clear,1,0", "empty 'image'"
    ),
    "image-report/missing-file": _line3(
        _image_report, "c.png,clear,1,0", "'c.png' not found"
    ),
    "image-report/encoding": _line3(
        _image_report, b"b.png," + LATIN1 + b",1,0", "not UTF-8"
    ),
    # image-text-labels: index.csv
    "image-text-labels/fields": _line3(
        _image_text_labels, "b.png,a dog,dog,2", "expected 5 fields"
    ),
    "image-text-labels/number": _line3(
        _image_text_labels, "b.png,a dog,dog,2x,val", "finite number"
    ),
    "image-text-labels/empty-label": _line3(
        _image_text_labels, "b.png,a dog,,2,val", "empty 'label'"
    ),
    "image-text-labels/split": _line3(
        _image_text_labels, "b.png,a dog,dog,2,dev", "split must be one of"
    ),
    "image-text-labels/missing-file": _line3(
        _image_text_labels, "c.png,a dog,dog,2,val", "'c.png' not found"
    ),
    "image-text-labels/encoding": _line3(
        _image_text_labels, b"b.png," + LATIN1 + b",dog,2,val", "not UTF-8"
    ),
    # av-clips: index.csv
    "av-clips/label": _line3(_av_clips, "b,b.wav,2,val", "must be 0 or 1"),
    "av-clips/fields": _line3(_av_clips, "b,b.wav,1", "expected 4 fields"),
    "av-clips/split": _line3(_av_clips, "b,b.wav,1,dev", "split must be"),
    "av-clips/missing-audio": _line3(
        _av_clips, "b,c.wav,1,val", "audio file 'c.wav' not found"
    ),
    "av-clips/missing-frames": _line3(
        _av_clips, "c,b.wav,1,val", "frames folder 'c' not found"
    ),
    "av-clips/encoding": _line3(_av_clips, b"b,b.wav,1,v\xe9l", "not UTF-8"),
    # flickr8k: captions.txt (Kaggle CSV)
    "flickr8k-csv/fields": _line3(_flickr_csv, "no comma", "malformed line"),
    "flickr8k-csv/empty-caption": _line3(
        _flickr_csv, "2.jpg,", "empty image name or caption"
    ),
    "flickr8k-csv/missing-file": _line3(
        _flickr_csv, "3.jpg,A cat .", "image file '3.jpg' not found"
    ),
    "flickr8k-csv/encoding": _line3(
        _flickr_csv, b"2.jpg,A " + LATIN1 + b" .", "not UTF-8"
    ),
    # flickr8k: Flickr8k.token.txt
    "flickr8k-token/no-tab": _line3(
        _flickr_token, "2.jpg#0 A cat .", "malformed line"
    ),
    "flickr8k-token/missing-file": _line3(
        _flickr_token, "3.jpg#0\tA cat .", "image file '3.jpg' not found"
    ),
    "flickr8k-token/encoding": _line3(
        _flickr_token, b"2.jpg#0\tA " + LATIN1 + b" .", "not UTF-8"
    ),
    # image-text-pairs: one .txt per image
    "image-text-pairs/encoding": _line3(
        _image_text_pairs, b"a " + LATIN1, "not UTF-8"
    ),
    # vqa: questions.json
    "vqa/syntax": _line3(
        _vqa, QUESTION_30.replace(b"}", b",}") % b"dogs", "invalid JSON"
    ),
    "vqa/encoding": _line3(_vqa, QUESTION_30 % LATIN1, "not UTF-8"),
    "vqa/missing-key": _vqa_semantic,
    "vqa/missing-image": _vqa_missing_image,
    # GloVe vectors
    "glove/fields": _line3(_glove, "cafe 0.5", "2 values"),
    "glove/number": _line3(_glove, "cafe 0.5 x", "not all numbers"),
    "glove/encoding": _line3(_glove, LATIN1 + b" 0.5 0.6", "not UTF-8"),
    "glove-words/encoding": _line3(
        _glove_words, LATIN1 + b" 0.5 0.6", "not UTF-8"
    ),
    # prepare-clips: the labels file
    "clip-labels/fields": _line3(
        _clip_labels, "quiet/b.mp4,x,y", "expected 2 fields"
    ),
    "clip-labels/missing-file": _line3(
        _clip_labels, "quiet/c.mp4,x", "not found under"
    ),
    "clip-labels/encoding": _line3(
        _clip_labels, b"quiet/b.mp4," + LATIN1, "not UTF-8"
    ),
    # movielens-100k, GroupLens layout (latin-1: every byte decodes)
    "grouplens/number": _grouplens_line3(
        "u.data", "1\t3\tfour\t1", "rating must be a number"
    ),
    "grouplens/fields": _grouplens_line3(
        "u.data", "1\t3\t4", "expected 4 fields"
    ),
    "grouplens/empty-user": _grouplens_line3(
        "u.data", "\t3\t4\t1", "unknown user id ''"
    ),
    "grouplens/genre-flag": _grouplens_line3(
        "u.item", GENRES_BAD, "genre flags must be 0 or 1"
    ),
    "grouplens/age": _grouplens_line3(
        "u.user", "3|old|M|writer|E2A", "age must be a number"
    ),
    "grouplens/missing-file": _grouplens_missing_user_file,
    # movielens-100k, RecBole layout
    "recbole/fields": _recbole_case("inter", 3, "2\t2\t3", "expected 4 fields"),
    "recbole/no-header": _recbole_case(
        "inter", 1, "1\t3\t5\t881250949", "header row"
    ),
    "recbole/encoding": _recbole_case(
        "item", 3, b"2\tSoci\xe9t\xe9\t1995\tDrama", "not UTF-8"
    ),
    "recbole/missing-file": _recbole_missing_user_file,
    # criteo: TF pipeline, fails while iterating
    "criteo/fields": _line3(
        _criteo, CRITEO.rsplit("\t", 1)[0], "expected 40", CRITEO_ERROR
    ),
    "criteo/label": _line3(
        _criteo, _criteo_line(0, "yes"), "label must be 0 or 1", CRITEO_ERROR
    ),
    "criteo/number": _line3(
        _criteo, _criteo_line(5, "12x"), "must be numbers", CRITEO_ERROR
    ),
    "criteo/encoding": _line3(
        _criteo,
        _criteo_line(20, "68fd").encode() + LATIN1,
        "not UTF-8",
        CRITEO_ERROR,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_reader_error_names_file_and_line(tmp_path, case):
    spec = CASES[case](str(tmp_path))
    with pytest.raises(spec.error) as info:
        spec.read()
    message = str(info.value)
    assert spec.where in message
    assert spec.what in message
    assert not isinstance(info.value, UnicodeDecodeError)


# ------------------------------------------------------------- helpers --


def test_decode_error_line_counts_like_an_editor(tmp_path):
    # BOM, CRLF and a lone CR end lines; the bad byte is on line 3, col 4.
    path = tmp_path / "x.txt"
    path.write_bytes(b"\xef\xbb\xbfone\r\ntwo\r" + LATIN1 + b"!\n")
    with pytest.raises(ValueError) as info:
        with textfile.open_text(path) as f:
            f.read()
    assert f"{path}:3: not UTF-8 text: byte 0xe9 at column 4 " in str(
        info.value
    )
    assert "of 'caf\ufffd!'" in str(info.value)


def test_decode_error_past_the_first_buffer_and_inside_a_record(tmp_path):
    # The text layer decodes in chunks of 8 KiB: the line must still be
    # the file's, and a bad byte inside a multi-line quoted field names
    # its own line, not the record's first.
    rows = [b"a,b"] + [b"x,y"] * 2000 + [b'z,"one', b"tw\xf6", b'three"']
    path = tmp_path / "big.csv"
    path.write_bytes(b"\n".join(rows) + b"\n")
    with pytest.raises(ValueError, match=rf"big\.csv:{len(rows) - 1}: "):
        list(textfile.csv_records(path))


def test_other_decode_errors_pass_through(tmp_path):
    path = tmp_path / "ok.txt"
    path.write_text("fine\n")
    with pytest.raises(UnicodeDecodeError):
        with textfile.open_text(path):
            b"\xff".decode("utf-8")


def test_flickr8k_skip_warning_names_every_skipped_line(tmp_path, caplog):
    # The tolerated missing image of the original release: every caption
    # line that is not read is named, not only the first.
    images = [f"{i}.jpg" for i in range(150)]
    for name in images:
        _touch(os.path.join(tmp_path, "Images", name))
    lines = [f"{name}#0\tA dog runs." for name in images]
    lines.insert(7, "ghost.jpg#0\tA ghost.")
    lines.insert(100, "ghost.jpg#1\tA ghost again.")
    path = _write(os.path.join(tmp_path, "Flickr8k.token.txt"), lines)
    with caplog.at_level("WARNING"):
        data = read_flickr8k(tmp_path)
    assert len(data) == 150
    assert "skipping 2 caption(s) of 1 missing image(s)" in caplog.text
    assert f"{path}:8: image file 'ghost.jpg' not found" in caplog.text
    assert "(also on line(s) 101)" in caplog.text
