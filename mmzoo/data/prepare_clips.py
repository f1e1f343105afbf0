"""Turns a folder of video files into the `av-clips` dataset layout.

`prepare_clips` (the `mmzoo prepare-clips SRC DST` command) finds every
video under `SRC` (`.mp4`, `.avi`, `.mov`, `.mkv`, `.webm`, any case,
searched recursively; hidden files and folders are skipped), cuts each one
into JPEG frames and a mono WAV with ffmpeg, and writes:

```
DST/
  index.csv                  frames,audio,<label 1>,...,<label L>
  clips/<clip id>/frame_00001.jpg ...   the clip's frames, in name order
  clips/<clip id>.wav        16-bit PCM mono WAV at `sample_rate`
```

`frames` and `audio` are paths relative to `DST`; a video without an audio
stream gets an empty `audio` cell (a missing modality) and no WAV. The clip
id is the video's path relative to `SRC` without its extension, every
character outside `[A-Za-z0-9_.-]` (`/` included) replaced by `_`, and a
`_2`, `_3`, ... suffix where two videos would share one. The label columns
are 0/1: by default a video's label is the name of its top-level subfolder
of `SRC` (`SRC/alarm/a.mp4` -> `alarm`; videos directly in `SRC` get none),
or they come from a CSV file (`labels=`, `--labels`) with header
`video,labels`: the video's path relative to `SRC` and its `|`-separated
label names.

Per video, with the flags `-nostdin -hide_banner -loglevel error -y`:

```
ffmpeg -i VIDEO -vf "fps=F,scale=w='min(S,iw)':h='min(S,ih)':
       force_original_aspect_ratio=decrease" -q:v 3 -frames:v N
       DST/clips/ID/frame_%05d.jpg
ffmpeg -i VIDEO -vn -sn -dn -map_metadata -1 -bitexact -ac 1 -ar RATE
       -acodec pcm_s16le DST/clips/ID.wav
```

so the frames' longer side is at most `S` (the aspect ratio is kept and a
smaller video is never upscaled). When the audio command fails because the
video has no audio stream (its error says so, or `ffmpeg -i VIDEO` lists no
`Audio:` stream), the clip has no audio. A video ffmpeg cannot open (or
that has no video stream) raises, or is skipped with a warning; one it
reads only in part (a cut-off download) keeps what was decoded, with a
warning quoting ffmpeg. Paths are passed as arguments, never through a
shell. `index.csv` is written last, through a temporary file and
`os.replace`, so an interrupted run never leaves an index naming files
that are not there.

ffmpeg comes from the `imageio-ffmpeg` package, which ships a static
binary: `pip install mmzoo[video]`.
"""

import csv
import os
import posixpath
import re
import shutil
import subprocess
import sys
import wave

from mmzoo.data.textfile import csv_records

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
INDEX_FILE = "index.csv"
FRAMES_COLUMN = "frames"
AUDIO_COLUMN = "audio"
CLIPS_DIR = "clips"
FRAME_PATTERN = "frame_%05d.jpg"
JPEG_QUALITY = 3  # ffmpeg's -q:v, 2 (best) .. 31
MAX_FRAMES = 99999  # what FRAME_PATTERN numbers in name order
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 192000
MIN_SIZE = 8
# Column names the av-clips reader gives a meaning; not usable as labels.
RESERVED_COLUMNS = (FRAMES_COLUMN, AUDIO_COLUMN, "split")
LABELS_HEADER = "video,labels"
FFMPEG_FLAGS = ("-nostdin", "-hide_banner", "-loglevel", "error", "-y")
# What ffmpeg says when the output would get no stream (no audio stream).
_NO_STREAM = ("does not contain any stream", "matches no streams")
_AUDIO_STREAM = re.compile(r"^\s*Stream #\d+:\d+.*?: Audio:", re.MULTILINE)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class _BadVideo(Exception):
    """ffmpeg could not turn a video into frames or audio."""


def prepare_clips(
    src,
    dst,
    fps=2.0,
    max_frames=64,
    sample_rate=16000,
    size=256,
    labels=None,
    skip_bad=False,
    overwrite=False,
):
    """Writes an `av-clips` folder from a folder of videos (see the module
    docstring for the layout and the ffmpeg commands).

    Everything is checked (arguments, `SRC`, the labels, `DST`) before the
    first video is converted. Clips already in `DST/clips` under the same
    ids are replaced; other files in `DST` are left alone.

    Args:
        src: str or path-like. Folder searched recursively for videos.
        dst: str or path-like. Output folder; created if missing.
        fps: float. Frames taken per second of video.
        max_frames: int. At most this many frames per clip (the first
            ones), 1..99999.
        sample_rate: int. Sample rate of the WAV files, 1000..192000.
        size: int. The longer side of a frame is at most this many pixels
            (at least 8); smaller videos keep their size.
        labels: str or path-like, or None. CSV file with header
            `video,labels`: each video's path relative to `src` (with its
            extension) and its `|`-separated label names (may be empty).
            Every video needs a row. None: the top-level subfolder of
            `src` holding a video is its label.
        skip_bad: bool. Skip a video ffmpeg cannot read, with a warning on
            stderr, instead of raising.
        overwrite: bool. Replace an existing `dst/index.csv` (it is
            deleted before the first video is converted).

    Returns:
        dict: `clips` (rows written), `with_audio` (clips with a WAV),
        `labels` (label column names, sorted), `skipped` (paths of the
        videos skipped by `skip_bad`) and `index` (path of `index.csv`).

    Raises:
        ImportError: when `imageio-ffmpeg` is not installed (install
            `mmzoo[video]`) or ships no ffmpeg binary for this platform.
        ValueError: when an argument is out of range; `src` is missing or
            holds no video; no video is in a subfolder of `src` and no
            `labels` file is given; the labels file is malformed or not
            UTF-8 (with its file and line), names a video that is not under
            `src` (with its file and line) or misses one; a label name is
            empty or one of `frames`, `audio` and `split`; `dst` is a file
            or holds an `index.csv` and `overwrite` is False; ffmpeg cannot
            read a video (naming it and ffmpeg's last error line) and
            `skip_bad` is False; or every video was skipped.

    Example:
    >>> summary = prepare_clips("videos", "data/monitoring", fps=4)
    >>> summary["clips"], summary["labels"]
    (120, ['alarm', 'normal'])
    """
    fps, max_frames, sample_rate, size = _check_args(
        fps, max_frames, sample_rate, size
    )
    src = os.path.abspath(os.fspath(src))
    dst = os.path.abspath(os.fspath(dst))
    videos = _find_videos(src)
    if labels is None:
        names, video_labels = _folder_labels(src, videos)
    else:
        names, video_labels = _file_labels(
            os.path.abspath(os.fspath(labels)), src, videos
        )
    index = _check_dst(dst, overwrite)
    ffmpeg = _ffmpeg_exe()

    if os.path.exists(index):  # overwrite: never leave the old index
        os.remove(index)
    os.makedirs(os.path.join(dst, CLIPS_DIR), exist_ok=True)
    rows, skipped = [], []
    for video, clip_id in zip(videos, _clip_ids(videos)):
        path = os.path.join(src, *video.split("/"))
        frames_cell = f"{CLIPS_DIR}/{clip_id}"
        audio_cell = f"{CLIPS_DIR}/{clip_id}.wav"
        frames_dir = os.path.join(dst, CLIPS_DIR, clip_id)
        wav = frames_dir + ".wav"
        try:
            notes = _extract_frames(
                ffmpeg, path, frames_dir, fps, max_frames, size
            )
            has_audio, audio_notes = _extract_audio(
                ffmpeg, path, wav, sample_rate
            )
        except _BadVideo as error:
            _remove(frames_dir, wav)
            message = f"ffmpeg cannot read video {path}: {error}"
            if not skip_bad:
                raise ValueError(message) from None
            print(f"mmzoo: warning: skipped: {message}", file=sys.stderr)
            skipped.append(path)
            continue
        notes = (notes + "\n" + audio_notes).strip()
        if notes:  # a partly damaged file: what ffmpeg decoded is kept
            print(
                f"mmzoo: warning: ffmpeg reported errors on {path}, its clip "
                f"may be incomplete: {_last_line(notes, 0)}",
                file=sys.stderr,
            )
        row_labels = video_labels[video]
        rows.append(
            [
                frames_cell,
                audio_cell if has_audio else "",
                *("1" if name in row_labels else "0" for name in names),
            ]
        )
    if not rows:
        raise ValueError(
            f"{src}: ffmpeg could read none of its {len(videos)} videos; "
            f"no {INDEX_FILE} written"
        )
    _write_index(index, names, rows)
    return {
        "clips": len(rows),
        "with_audio": sum(1 for row in rows if row[1]),
        "labels": list(names),
        "skipped": skipped,
        "index": index,
    }


def _check_args(fps, max_frames, sample_rate, size):
    """The numeric arguments as float/int; raises when out of range."""
    fps = float(fps)
    if not 0 < fps < float("inf"):
        raise ValueError(f"prepare_clips: fps must be > 0, got {fps}")
    checked = []
    for name, value, low, high in (
        ("max_frames", max_frames, 1, MAX_FRAMES),
        ("sample_rate", sample_rate, MIN_SAMPLE_RATE, MAX_SAMPLE_RATE),
        ("size", size, MIN_SIZE, None),
    ):
        if isinstance(value, bool) or int(value) != value:
            raise ValueError(
                f"prepare_clips: {name} must be an integer, got {value!r}"
            )
        value = int(value)
        if value < low or (high is not None and value > high):
            span = f"{low}..{high}" if high is not None else f">= {low}"
            raise ValueError(
                f"prepare_clips: {name} must be {span}, got {value}"
            )
        checked.append(value)
    return (fps, *checked)


def _find_videos(src):
    """Sorted `/`-separated paths, relative to `src`, of its videos."""
    if not os.path.isdir(src):
        what = "is not a folder" if os.path.exists(src) else "not found"
        raise ValueError(f"prepare-clips: source folder {src} {what}")
    videos = []
    for root, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel_root = os.path.relpath(root, src)
        for name in files:
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() not in VIDEO_EXTENSIONS:
                continue
            rel = name if rel_root == "." else os.path.join(rel_root, name)
            videos.append(rel.replace(os.sep, "/"))
    if not videos:
        raise ValueError(
            f"prepare-clips: source folder {src} holds no video "
            f"({', '.join(VIDEO_EXTENSIONS)}, any case, in any subfolder)"
        )
    return sorted(videos)


def _clip_ids(videos):
    """One unique, file-name-safe id per video path (see module docs)."""
    ids, taken = [], set()
    for video in videos:
        base = _UNSAFE.sub("_", posixpath.splitext(video)[0])
        if not base.strip("."):  # never ".", ".." or empty
            base = "_" + base
        clip_id, n = base, 2
        # Case-insensitive, for case-insensitive file systems.
        while clip_id.lower() in taken:
            clip_id, n = f"{base}_{n}", n + 1
        taken.add(clip_id.lower())
        ids.append(clip_id)
    return ids


def _check_label(name, where):
    if not name or name in RESERVED_COLUMNS:
        raise ValueError(
            f"{where}: label name {name!r} is not allowed; a label must be "
            f"non-empty and not one of {', '.join(RESERVED_COLUMNS)} "
            "(columns of index.csv)"
        )


def _folder_labels(src, videos):
    """Label names and per-video label sets from top-level subfolders."""
    video_labels = {}
    for video in videos:
        top = video.split("/")[0] if "/" in video else None
        if top is not None:
            _check_label(top, f"{src}: subfolder {top!r}")
        video_labels[video] = {top} if top is not None else set()
    names = sorted(set().union(*video_labels.values()))
    if not names:
        raise ValueError(
            f"prepare-clips: every video of {src} is directly in it; the "
            "labels are the names of the subfolders of the source folder "
            "holding the videos (SRC/<label>/video.mp4), or come from a "
            f"labels file (labels=, --labels) with header {LABELS_HEADER}"
        )
    return names, video_labels


def _file_labels(path, src, videos):
    """Label names and per-video label sets from a `video,labels` CSV."""
    if not os.path.isfile(path):
        raise ValueError(f"prepare-clips: labels file {path} not found")
    records = csv_records(path)
    try:
        line, header = next(records)
    except StopIteration:
        raise ValueError(
            f"{path}:1: empty file; expected a header row '{LABELS_HEADER}'"
        ) from None
    header = [name.strip() for name in header]
    if "video" not in header or "labels" not in header:
        raise ValueError(
            f"{path}:{line}: header {header} lacks 'video' or 'labels'; "
            f"expected '{LABELS_HEADER}'"
        )
    video_col, labels_col = header.index("video"), header.index("labels")
    known = set(videos)
    video_labels, rows_of = {}, {}
    for line, fields in records:
        where = f"{path}:{line}"
        if len(fields) != len(header):
            raise ValueError(
                f"{where}: expected {len(header)} fields "
                f"({','.join(header)}), got {len(fields)}"
            )
        name = fields[video_col].strip().replace("\\", "/")
        video = posixpath.normpath(name) if name else ""
        if video not in known:
            raise ValueError(
                f"{where}: video {name!r} not found under {src} (paths are "
                "relative to the source folder, with their extension; "
                f"videos are {', '.join(VIDEO_EXTENSIONS)} files)"
            )
        if video in rows_of:
            raise ValueError(
                f"{where}: video {name!r} already listed on line "
                f"{rows_of[video]}"
            )
        rows_of[video] = line
        names = {part.strip() for part in fields[labels_col].split("|")}
        names.discard("")
        for label in names:
            _check_label(label, where)
        video_labels[video] = names
    missing = [video for video in videos if video not in video_labels]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ValueError(
            f"{path}: video {missing[0]!r}{more} under {src} is not listed; "
            "every video needs a row (an empty labels cell for no label)"
        )
    names = sorted(set().union(*video_labels.values()))
    if not names:
        raise ValueError(
            f"{path}: names no label; av-clips needs at least one label column"
        )
    return names, video_labels


def _check_dst(dst, overwrite):
    """Path of `dst/index.csv`; raises when it may not be written."""
    if os.path.exists(dst) and not os.path.isdir(dst):
        raise ValueError(f"prepare-clips: output {dst} is not a folder")
    index = os.path.join(dst, INDEX_FILE)
    if os.path.exists(index) and not overwrite:
        raise ValueError(
            f"prepare-clips: {index} already exists; not overwriting it "
            "(overwrite=True, or --overwrite, replaces it)"
        )
    return index


def _ffmpeg_exe():
    """Path of the ffmpeg binary that `imageio-ffmpeg` ships."""
    try:
        import imageio_ffmpeg
    except ImportError as error:
        raise ImportError(
            "prepare-clips needs ffmpeg from the imageio-ffmpeg package: "
            "pip install 'mmzoo[video]'"
        ) from error
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as error:
        raise ImportError(
            f"imageio-ffmpeg found no ffmpeg binary: {error}"
        ) from error


def _ffmpeg(exe, args):
    """Runs ffmpeg quietly; returns `(exit status, stderr text)`."""
    proc = subprocess.run(
        [exe, *FFMPEG_FLAGS, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    return proc.returncode, proc.stderr.decode("utf-8", "replace")


def _last_line(stderr, returncode):
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"ffmpeg exit status {returncode}"


def _remove(frames_dir, wav):
    if os.path.isdir(frames_dir):
        shutil.rmtree(frames_dir)
    elif os.path.lexists(frames_dir):
        os.remove(frames_dir)
    if os.path.lexists(wav):
        os.remove(wav)


def _extract_frames(exe, video, frames_dir, fps, max_frames, size):
    """Writes the frames of `video` into a fresh `frames_dir`; returns
    ffmpeg's error output (empty unless part of the file is damaged)."""
    _remove(frames_dir, frames_dir + ".wav")
    os.makedirs(frames_dir)
    scale = (
        f"scale=w='min({size},iw)':h='min({size},ih)'"
        ":force_original_aspect_ratio=decrease"
    )
    status, stderr = _ffmpeg(
        exe,
        [
            "-i", video,
            "-vf", f"fps={fps!r},{scale}",
            "-q:v", str(JPEG_QUALITY),
            "-frames:v", str(max_frames),
            # The image muxer reads % in the path as a pattern.
            os.path.join(frames_dir.replace("%", "%%"), FRAME_PATTERN),
        ],
    )  # fmt: skip
    if status != 0:
        if any(text in stderr for text in _NO_STREAM):
            raise _BadVideo(
                f"no video stream (ffmpeg: {_last_line(stderr, status)})"
            )
        raise _BadVideo(_last_line(stderr, status))
    if not any(name.endswith(".jpg") for name in os.listdir(frames_dir)):
        raise _BadVideo(
            f"no video frame decoded (ffmpeg: {_last_line(stderr, status)})"
        )
    return stderr


def _extract_audio(exe, video, wav, sample_rate):
    """Writes the audio of `video` as a mono 16-bit WAV.

    Returns `(has_audio, ffmpeg's error output)`; `has_audio` is False (and
    no file is left) when the video has no audio stream or the stream has
    no samples.
    """
    status, stderr = _ffmpeg(
        exe,
        [
            "-i", video,
            "-vn", "-sn", "-dn",
            "-map_metadata", "-1", "-bitexact",
            "-ac", "1", "-ar", str(sample_rate),
            "-acodec", "pcm_s16le",
            wav,
        ],
    )  # fmt: skip
    if status != 0:
        if os.path.lexists(wav):
            os.remove(wav)
        if any(text in stderr for text in _NO_STREAM) or not _has_audio(
            exe, video
        ):
            return False, ""
        raise _BadVideo(_last_line(stderr, status))
    try:
        with wave.open(wav, "rb") as f:
            empty = f.getnframes() == 0
    except (wave.Error, EOFError) as error:
        os.remove(wav)
        raise _BadVideo(f"unreadable WAV written by ffmpeg: {error}") from None
    if empty:
        os.remove(wav)
        return False, stderr
    return True, stderr


def _has_audio(exe, video):
    """Whether `ffmpeg -i VIDEO` lists an audio stream."""
    proc = subprocess.run(
        [exe, "-nostdin", "-hide_banner", "-i", video],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    return bool(_AUDIO_STREAM.search(proc.stderr.decode("utf-8", "replace")))


def _write_index(index, names, rows):
    """Writes `index.csv` through a temporary file in the same folder."""
    tmp = f"{index}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow([FRAMES_COLUMN, AUDIO_COLUMN, *names])
            writer.writerows(rows)
        os.replace(tmp, index)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
