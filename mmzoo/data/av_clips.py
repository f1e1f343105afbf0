"""Reader and synthetic writer for the `av-clips` dataset layout.

The layout is a folder of audio + video monitoring clips:

```
data_dir/
  index.csv          frames,audio,<label 1>,<label 2>,...[,split]
  clips/00001/       (any folder relative to data_dir) the clip's frames:
    frame_00.png     .jpg, .jpeg or .png files (any case), in name order
  clips/00001.wav    (any path relative to data_dir) 16-bit PCM WAV
```

`index.csv` has a header row naming its columns, in any order:

- `frames`: folder of the clip's frame images, relative to the folder.
  Its `.jpg`/`.jpeg`/`.png` files (any case) are the frames, sorted by
  file name; other files in it are ignored.
- `audio`: the clip's `.wav` file, relative to the folder; an empty cell
  means the clip has no audio (a missing modality).
- `split` (optional): `train`, `val` or `test` for every row; without it
  the examples are split by seed.
- `sensors` (optional): the clip's sensor readings, numbers separated by
  spaces or `;` (`nan` = a missing reading; an empty cell = none), the
  same count on every row (kind `sensor`).
- every other column is one 0/1 label (`0`/`1`, or `0.0`/`1.0`).

Fields may be quoted as the `csv` module writes them. The reader only
parses the index and checks that the files exist; decoding the frames and
the WAV files happens later (another module validates their contents).

`write_synthetic_av_clips` writes a folder in this layout whose `alarm`
label needs both modalities: it is 1 exactly when the clip's visual event
and its sound burst fall in the same half of the clip.
"""

import csv
import os

import numpy as np

from mmzoo.data.examples import LabeledExamples
from mmzoo.data.image_report import INDEX_FILE, open_index, split_value

LAYOUT = "av-clips"
FRAMES_COLUMN = "frames"
AUDIO_COLUMN = "audio"
SPLIT_COLUMN = "split"
SENSORS_COLUMN = "sensors"
HEADER = "frames,audio,<label>,...[,split][,sensors]"
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
AUDIO_EXTENSION = ".wav"
_LABEL_VALUES = {"0": 0.0, "1": 1.0, "0.0": 0.0, "1.0": 1.0}


def read_av_clips(data_dir):
    """Reads an `av-clips` folder (see the module docstring).

    Args:
        data_dir: str or path-like. Folder holding `index.csv`.

    Returns:
        A `LabeledExamples` in file order with columns `frames` (kind
        `video`; per row a tuple of the absolute paths of the clip's frame
        images, sorted by file name) and `audio` (kind `audio`; per row the
        absolute path of the WAV file, or `""` when the clip has none);
        `labels` float32 `[N, L]` over `label_names` (the label columns in
        header order); `multi_label` True; `splits` the per-row split
        names, or None without a `split` column.

    Raises:
        ValueError: naming the file (and line), when `index.csv` is missing,
            empty or has no rows, the header lacks `frames`, `audio` or any
            label column or has a duplicate or empty column name, a row has
            the wrong number of fields, a frames folder does not exist or
            holds no frame image, an audio file does not end in `.wav` or
            does not exist, a label is not 0 or 1, a split is not
            `train`, `val` or `test`, or `index.csv` is not UTF-8.

    Example:
    >>> examples = read_av_clips("data/monitoring")
    >>> examples.columns["frames"][0]  # ('/.../frame_00.png', ...)
    >>> examples.labels.shape  # (num_clips, num_labels)
    """
    data_dir = os.path.abspath(os.fspath(data_dir))
    index, header_line, header, rows = open_index(data_dir, LAYOUT, HEADER)
    col = _check_header(index, header_line, header)
    label_cols = [
        i
        for i, name in enumerate(header)
        if name
        not in (FRAMES_COLUMN, AUDIO_COLUMN, SPLIT_COLUMN, SENSORS_COLUMN)
    ]
    label_names = tuple(header[i] for i in label_cols)

    frames, audio, labels, splits, sensors = [], [], [], [], []
    for line, fields in rows:
        where = f"{index}:{line}"
        if len(fields) != len(header):
            raise ValueError(
                f"{where}: expected {len(header)} fields "
                f"({','.join(header)}), got {len(fields)}"
            )
        frames.append(_frame_paths(where, data_dir, fields[col[FRAMES_COLUMN]]))
        audio.append(_audio_path(where, data_dir, fields[col[AUDIO_COLUMN]]))
        labels.append([_label(where, header[i], fields[i]) for i in label_cols])
        if SPLIT_COLUMN in col:
            splits.append(split_value(where, fields[col[SPLIT_COLUMN]]))
        if SENSORS_COLUMN in col:
            sensors.append(
                _readings(where, fields[col[SENSORS_COLUMN]], sensors)
            )
    if not frames:
        raise ValueError(
            f"{index}:{header_line}: no examples after the header row"
        )
    columns = {FRAMES_COLUMN: frames, AUDIO_COLUMN: audio}
    kinds = {FRAMES_COLUMN: "video", AUDIO_COLUMN: "audio"}
    if SENSORS_COLUMN in col:
        columns[SENSORS_COLUMN] = _fill_missing_readings(index, sensors)
        kinds[SENSORS_COLUMN] = "sensor"
    return LabeledExamples(
        columns=columns,
        kinds=kinds,
        labels=np.asarray(labels, np.float32).reshape(
            len(labels), len(label_names)
        ),
        label_names=label_names,
        targets=None,
        multi_label=True,
        splits=splits if SPLIT_COLUMN in col else None,
    )


def _readings(where, field, before):
    """A `sensors` cell: numbers separated by spaces or `;` (`nan` = a
    missing reading), or `""` (all missing: None until the width is
    known). Its width must match the rows before it."""
    text = field.replace(";", " ").strip()
    if not text:
        return None
    try:
        values = tuple(float(v) for v in text.split())
    except ValueError:
        raise ValueError(
            f"{where}: sensors {field!r} is not numbers separated by spaces "
            "or ';' (nan = a missing reading)"
        ) from None
    width = next((len(v) for v in before if v is not None), None)
    if width is not None and len(values) != width:
        raise ValueError(
            f"{where}: sensors has {len(values)} readings; the rows before "
            f"have {width}"
        )
    return values


def _fill_missing_readings(index, rows):
    width = next((len(v) for v in rows if v is not None), None)
    if width is None:
        raise ValueError(
            f"{index}: the sensors column is empty on every row; leave it "
            "out or give readings"
        )
    return [v if v is not None else (float("nan"),) * width for v in rows]


def _check_header(index, line, header):
    """Column name -> field position; raises on a bad header."""
    where = f"{index}:{line}"
    for column in (FRAMES_COLUMN, AUDIO_COLUMN):
        if column not in header:
            raise ValueError(
                f"{where}: missing column '{column}'; header has {header}, "
                f"expected {HEADER}"
            )
    if not all(header):
        raise ValueError(
            f"{where}: empty column name in header {header}; every label "
            "column needs a name"
        )
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise ValueError(f"{where}: duplicate columns {duplicates} in header")
    if not set(header) - {FRAMES_COLUMN, AUDIO_COLUMN, SPLIT_COLUMN}:
        raise ValueError(
            f"{where}: no label columns; expected one 0/1 column per label "
            f"besides '{FRAMES_COLUMN}', '{AUDIO_COLUMN}' and "
            f"'{SPLIT_COLUMN}'"
        )
    return {name: i for i, name in enumerate(header)}


def _frame_paths(where, data_dir, field):
    """Sorted absolute paths of the frame images in one `frames` folder."""
    name = field.strip()
    if not name:
        raise ValueError(f"{where}: empty '{FRAMES_COLUMN}' field")
    folder = os.path.normpath(os.path.join(data_dir, name))
    if not os.path.isdir(folder):
        what = "is not a folder" if os.path.exists(folder) else "not found"
        raise ValueError(f"{where}: frames folder '{name}' {what}")
    with os.scandir(folder) as entries:
        files = sorted(
            entry.name
            for entry in entries
            if entry.name.lower().endswith(FRAME_EXTENSIONS) and entry.is_file()
        )
    if not files:
        raise ValueError(
            f"{where}: frames folder '{name}' holds no frame image "
            f"({', '.join(FRAME_EXTENSIONS)})"
        )
    return tuple(os.path.join(folder, file) for file in files)


def _audio_path(where, data_dir, field):
    """Absolute path of one `audio` cell, or `""` for a clip without."""
    name = field.strip()
    if not name:
        return ""
    if not name.lower().endswith(AUDIO_EXTENSION):
        raise ValueError(
            f"{where}: audio file '{name}' must be a 16-bit PCM "
            f"'{AUDIO_EXTENSION}' file (or an empty cell for no audio)"
        )
    path = os.path.normpath(os.path.join(data_dir, name))
    if not os.path.isfile(path):
        raise ValueError(f"{where}: audio file '{name}' not found")
    return path


def _label(where, name, field):
    value = _LABEL_VALUES.get(field.strip())
    if value is None:
        raise ValueError(
            f"{where}: label '{name}' must be 0 or 1, got {field!r}"
        )
    return value


# --------------------------------------------------------------------------
# Synthetic clips: a visual event x a sound burst -> labels.
# --------------------------------------------------------------------------

LABELS = ("alarm", "red_object", "high_tone")
_RED = (230, 30, 30)
_BLUE = (30, 30, 230)
_BACKGROUND_MAX = 60  # background pixels are uniform 0..60
_NOISE_STD = 0.02
_TONE_AMPLITUDE = 0.5
_BURST_FRACTION = 0.6  # of a segment
_FADE_FRACTION = 0.1  # of the burst, at each end
_MISSING_AUDIO = 0.05


def write_synthetic_av_clips(
    out_dir,
    num_examples=400,
    seed=0,
    image_size=32,
    num_frames=8,
    sample_rate=16000,
    seconds=1.0,
):
    """Writes a synthetic `av-clips` folder whose `alarm` needs both
    modalities.

    Each clip has two segments, the first and second half of its frames
    and of its audio. The frames are dark noise; in every frame of one
    segment (chosen uniformly) a bright square, red or blue, sits at a
    random position. The audio is faint noise with one sine burst (about
    60% of a segment, centred in it) in one segment chosen independently,
    high (`sample_rate / 8`) or low (`sample_rate / 32`) pitched. Labels:

    - `alarm`: the square and the burst are in the same segment. Either
      modality alone says nothing about it (P = 0.5 whatever it shows).
    - `red_object`: the square is red (video alone decides it).
    - `high_tone`: the burst is high pitched (audio alone decides it).

    About 5% of the clips (at least one from 20 clips on) have an empty
    `audio` cell and no WAV file; their labels are still written as drawn.

    Files: `index.csv`, `clips/<i:05d>/frame_<k:02d>.png` and
    `clips/<i:05d>.wav`. The same arguments always write the same bytes;
    an existing folder is overwritten (stale frames of a clip are removed).

    Args:
        out_dir: str or path-like. Folder to write; created if missing.
        num_examples: int. Number of clips.
        seed: int. Seed of `numpy.random.default_rng`.
        image_size: int. Height and width of the frames.
        num_frames: int. Frames per clip (at least 2).
        sample_rate: int. Audio samples per second.
        seconds: float. Audio length of a clip.

    Returns:
        str. `out_dir`.

    Raises:
        ValueError: when an argument is out of range.

    Example:
    >>> folder = write_synthetic_av_clips("/tmp/av", num_examples=100)
    >>> read_av_clips(folder).label_names
    ('alarm', 'red_object', 'high_tone')
    """
    num_examples = int(num_examples)
    image_size = int(image_size)
    num_frames = int(num_frames)
    sample_rate = int(sample_rate)
    num_samples = int(round(sample_rate * float(seconds)))
    if num_examples < 1 or image_size < 3 or num_frames < 2:
        raise ValueError(
            "write_synthetic_av_clips: need num_examples >= 1, image_size "
            f">= 3 and num_frames >= 2, got {num_examples}, {image_size} "
            f"and {num_frames}"
        )
    if sample_rate < 64 or num_samples < 20:
        raise ValueError(
            "write_synthetic_av_clips: need sample_rate >= 64 and at least "
            f"20 samples per clip, got {sample_rate} Hz x {seconds} s"
        )
    from mmzoo.specs import encode_png, encode_wav

    out_dir = os.fspath(out_dir)
    rng = np.random.default_rng(seed)
    n = num_examples
    side = max(1, int(round(image_size / 3)))
    visual_segment = rng.integers(0, 2, n)
    red = rng.random(n) < 0.5
    top = rng.integers(0, image_size - side + 1, n)
    left = rng.integers(0, image_size - side + 1, n)
    audio_segment = rng.integers(0, 2, n)
    high = rng.random(n) < 0.5
    num_missing = int(round(_MISSING_AUDIO * n))
    if n >= 20:
        num_missing = max(num_missing, 1)
    missing = np.zeros(n, bool)
    missing[rng.choice(n, num_missing, replace=False)] = True
    labels = np.stack(
        [visual_segment == audio_segment, red, high], axis=1
    ).astype(int)

    frame_split = num_frames // 2
    sample_split = num_samples // 2
    time = np.arange(num_samples) / float(sample_rate)
    clips = os.path.join(out_dir, "clips")
    os.makedirs(clips, exist_ok=True)
    records = []
    for i in range(n):
        name = f"{i:05d}"
        folder = os.path.join(clips, name)
        os.makedirs(folder, exist_ok=True)
        pixels = rng.integers(
            0,
            _BACKGROUND_MAX + 1,
            (num_frames, image_size, image_size, 3),
            dtype=np.uint8,
        )
        event = (
            slice(0, frame_split)
            if visual_segment[i] == 0
            else slice(frame_split, num_frames)
        )
        pixels[event, top[i] : top[i] + side, left[i] : left[i] + side] = (
            _RED if red[i] else _BLUE
        )
        frame_files = [f"frame_{k:02d}.png" for k in range(num_frames)]
        _remove_stale_frames(folder, frame_files)
        for file, frame in zip(frame_files, pixels):
            with open(os.path.join(folder, file), "wb") as f:
                f.write(encode_png(frame))

        samples = rng.normal(0.0, _NOISE_STD, num_samples)
        wav = os.path.join(clips, name + AUDIO_EXTENSION)
        if missing[i]:
            if os.path.isfile(wav):
                os.remove(wav)
            audio_cell = ""
        else:
            start, stop = (
                (0, sample_split)
                if audio_segment[i] == 0
                else (sample_split, num_samples)
            )
            samples += _burst(
                time, start, stop, sample_rate / (8 if high[i] else 32)
            )
            with open(wav, "wb") as f:
                f.write(encode_wav(samples, sample_rate))
            audio_cell = f"clips/{name}{AUDIO_EXTENSION}"
        records.append(
            [f"clips/{name}", audio_cell, *(str(v) for v in labels[i])]
        )

    with open(
        os.path.join(out_dir, INDEX_FILE), "w", encoding="utf-8", newline=""
    ) as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([FRAMES_COLUMN, AUDIO_COLUMN, *LABELS])
        writer.writerows(records)
    return out_dir


def _burst(time, start, stop, pitch):
    """A faded sine tone over the middle 60% of samples `start:stop`."""
    length = max(1, int(round(_BURST_FRACTION * (stop - start))))
    first = start + (stop - start - length) // 2
    envelope = np.zeros(len(time))
    fade = max(1, int(round(_FADE_FRACTION * length)))
    ramp = np.minimum(1.0, np.arange(1, length + 1) / fade)
    envelope[first : first + length] = np.minimum(ramp, ramp[::-1])
    return _TONE_AMPLITUDE * envelope * np.sin(2 * np.pi * pitch * time)


def _remove_stale_frames(folder, keep):
    """Deletes frame images of an earlier, longer write of this clip."""
    keep = set(keep)
    for file in os.listdir(folder):
        if file.lower().endswith(FRAME_EXTENSIONS) and file not in keep:
            path = os.path.join(folder, file)
            if os.path.isfile(path):
                os.remove(path)
