"""Deterministic synthetic image datasets, written in the documented layouts.

These generators give every image model a small dataset that needs no
download and that only a model using the right inputs can solve:

- `write_synthetic_diagnosis`: chest-X-ray-like pictures with clinical
  histories in the `image-report` layout. Each of the three labels is the
  AND of one image fact and one report fact, so neither modality alone can
  reach the score of a model that fuses both.
- `write_synthetic_captions`: scenes of one or two coloured shapes with
  3-5 reference captions each, in the `flickr8k` (`captions.txt`) layout.
- `write_synthetic_shapes_reference`: two coloured shapes an image and a
  text that refers to one of them, in the `image-text-labels` layout; the
  label is the colour of the shape referred to, the target its size.

Pixels are drawn with vectorized numpy; the files are written so that the
ordinary readers (`read_image_report`, `read_flickr8k`,
`read_image_text_labels`) are the ones that load them. The same `seed`
always writes the same bytes.
"""

import csv
import os

import numpy as np
import tensorflow as tf

from mmzoo.data.image_report import ImageReportData, write_image_report

_CHUNK = 256  # images drawn per vectorized batch

# --------------------------------------------------------------------------
# Diagnosis: image facts x report facts -> labels.
# --------------------------------------------------------------------------

DIAGNOSIS_LABELS = ("pneumonia", "malignancy", "effusion")
# Opacity regions, as seen on the image; -1 = no opacity.
OPACITY_REGIONS = ("left upper", "right upper", "left lower", "right lower")
_UPPER = (0, 1)
_LOWER = (2, 3)
_LABEL_NOISE = 0.03


def diagnosis_label_names():
    """Label names of `write_synthetic_diagnosis`, in column order.

    Returns:
        tuple of str: `("pneumonia", "malignancy", "effusion")`.
    """
    return DIAGNOSIS_LABELS


_INTROS = (
    "{article} {age}-year-old {noun} presents to the emergency department.",
    "{age} year old {noun} seen in clinic today.",
    "Patient is {a} {age}-year-old {noun}.",
    "{Adj}, {age} years old.",
    "Referral for {a} {age}-year-old {noun} from the general practitioner.",
)
_INFECTION_YES = (
    "Reports fever and a productive cough for three days.",
    "Febrile to 39 degrees with a cough.",
    "Complains of chills, cough and green sputum.",
    "Worsening cough with rigors since yesterday.",
    "Fever, breathlessness and purulent sputum.",
    "Coughing up yellow phlegm, temperature 38.5.",
)
_INFECTION_NO = (
    "Afebrile.",
    "Vital signs unremarkable.",
    "Denies any recent illness.",
)
_SMOKING_YES = (
    "Smoked a pack a day for thirty years.",
    "Long history of tobacco use.",
    "Current heavy smoker.",
    "Reports unintentional weight loss over two months.",
    "Lost 8 kg without trying.",
    "Former smoker, 40 pack-years.",
    "Night sweats and loss of appetite, weight down.",
)
_SMOKING_NO = (
    "Nonsmoker.",
    "Weight stable.",
    "Lifelong nonsmoker.",
)
_CARDIAC_YES = (
    "Known congestive heart failure.",
    "History of heart failure, on furosemide.",
    "Bilateral ankle swelling and orthopnea.",
    "Pitting edema of both legs.",
    "Reduced ejection fraction on last echo.",
    "Admitted last year with decompensated heart failure.",
)
_CARDIAC_NO = (
    "Normal echocardiogram last year.",
    "Cardiology review unremarkable.",
)
_DISTRACTORS = (
    "Takes metformin for type 2 diabetes.",
    "Allergic to penicillin.",
    "Works as a schoolteacher.",
    "Recently returned from a trip abroad.",
    "Blood pressure well controlled.",
    "Lives alone with a cat.",
    "Knee replacement in 2015.",
    "Request: frontal chest radiograph.",
    "Follow-up after a fall at home.",
    "Vaccinations up to date.",
    "Mild back pain after lifting boxes.",
    "Drinks alcohol socially.",
)


def _report(rng, infection, smoking, cardiac):
    """One clinical history; the three facts are worded, never labelled."""
    female = rng.random() < 0.5
    age = int(rng.integers(25, 90))
    a = "an" if str(age).startswith("8") else "a"
    intro = _INTROS[rng.integers(len(_INTROS))].format(
        age=age,
        a=a,
        article=a.capitalize(),
        noun="woman" if female else "man",
        Adj="Female" if female else "Male",
    )
    body = []
    for fact, yes, no in (
        (infection, _INFECTION_YES, _INFECTION_NO),
        (smoking, _SMOKING_YES, _SMOKING_NO),
        (cardiac, _CARDIAC_YES, _CARDIAC_NO),
    ):
        if fact:
            body.append(yes[rng.integers(len(yes))])
        elif rng.random() < 0.5:
            body.append(no[rng.integers(len(no))])
    for i in rng.choice(len(_DISTRACTORS), rng.integers(0, 3), False):
        body.append(_DISTRACTORS[i])
    order = rng.permutation(len(body))
    return " ".join([intro, *(body[i] for i in order)])


def synthetic_diagnosis_facts(num_examples=600, seed=0):
    """Ground truth behind `write_synthetic_diagnosis`, without the images.

    Image facts: `opacity_region` (int, -1 = none, else an index into
    `OPACITY_REGIONS`; regions 0-1 are upper, 2-3 lower), `blunted_angle`
    (bool, fluid-like brightening at a lung base) and `enlarged_heart`
    (bool, a distractor that no label uses). Report facts:
    `infection_history` (fever/cough/sputum), `smoking_history`
    (tobacco/weight loss) and `cardiac_history` (heart failure/edema).
    Labels, each flipped with probability 3%:

    - `pneumonia` = lower-zone opacity AND infection history,
    - `malignancy` = upper-zone opacity AND smoking history,
    - `effusion` = blunted angle AND cardiac history.

    Args:
        num_examples: int. Number of examples. Defaults to 600.
        seed: int. Non-negative random seed. Defaults to 0.

    Returns:
        dict of the six facts above (numpy arrays `[N]`), `reports` (list
        of str), `clean_labels` and `labels` (float32 `[N, 3]`, without and
        with label noise).
    """
    _check_count("synthetic_diagnosis_facts", "num_examples", num_examples)
    _check_count("synthetic_diagnosis_facts", "seed", seed, minimum=0)
    n = num_examples
    rng = np.random.default_rng([seed, 0])
    region = rng.choice(
        np.arange(-1, 4), size=n, p=(0.2, 0.2, 0.2, 0.2, 0.2)
    ).astype(np.int64)
    facts = {
        "opacity_region": region,
        "blunted_angle": rng.random(n) < 0.5,
        "enlarged_heart": rng.random(n) < 0.3,
        "infection_history": rng.random(n) < 0.6,
        "smoking_history": rng.random(n) < 0.55,
        "cardiac_history": rng.random(n) < 0.5,
    }
    clean = np.stack(
        [
            np.isin(region, _LOWER) & facts["infection_history"],
            np.isin(region, _UPPER) & facts["smoking_history"],
            facts["blunted_angle"] & facts["cardiac_history"],
        ],
        axis=1,
    )
    flip = rng.random(clean.shape) < _LABEL_NOISE
    text_rng = np.random.default_rng([seed, 1])
    facts["reports"] = [
        _report(text_rng, *flags)
        for flags in zip(
            facts["infection_history"],
            facts["smoking_history"],
            facts["cardiac_history"],
            strict=True,
        )
    ]
    facts["clean_labels"] = clean.astype(np.float32)
    facts["labels"] = (clean ^ flip).astype(np.float32)
    return facts


def _grid(size):
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    return coords[None, :, None], coords[None, None, :]  # y, x


def _col(values):
    return np.asarray(values, dtype=np.float32)[:, None, None]


def _draw_chests(region, blunted, heart, size, rng):
    """Grayscale chest pictures, uint8 `[n, size, size]`."""
    n = len(region)
    y, x = _grid(size)
    scale = _col(rng.uniform(0.93, 1.07, n))
    xs = (x - 0.5 - _col(rng.uniform(-0.03, 0.03, n))) / scale + 0.5
    ys = (y - 0.5 - _col(rng.uniform(-0.03, 0.03, n))) / scale + 0.5
    img = np.full((n, size, size), 0.05, dtype=np.float32)
    thorax = ((xs - 0.5) / 0.45) ** 2 + ((ys - 0.6) / 0.52) ** 2 <= 1.0
    img = np.where(thorax, 0.42, img)
    # Two lung fields, darker than soft tissue, lighter than the background,
    # crossed by faint curved ribs.
    ribs = np.sin(2 * np.pi * (ys * 6.5 + 2.5 * (xs - 0.5) ** 2)) > 0.6
    ribs = ribs.astype(np.float32)
    lungs = np.zeros_like(thorax)
    fluid_side = rng.integers(0, 3, n)  # 0 left, 1 right, 2 both
    for side, cx in enumerate((0.31, 0.69)):
        u = (xs - cx) / 0.15
        v = (ys - 0.5) / 0.3
        lung = u**2 + v**2 <= 1.0
        lungs |= lung
        img = np.where(lung, 0.2 + 0.07 * ribs, img)
        lateral = -u if side == 0 else u
        has_fluid = _col(blunted & ((fluid_side == side) | (fluid_side == 2)))
        fluid = lung & (v > 0.68 - 0.3 * lateral) & (has_fluid > 0)
        img = img + 0.32 * fluid
    spine = thorax & (np.abs(xs - 0.5) < 0.05)
    img = np.where(spine, np.maximum(img, 0.62), img)
    heart_rx = _col(np.where(heart, 0.18, 0.12) * rng.uniform(0.9, 1.1, n))
    heart_mask = ((xs - 0.55) / heart_rx) ** 2 + ((ys - 0.68) / 0.12) ** 2
    img = np.where(heart_mask <= 1.0, np.maximum(img, 0.55), img)
    # Opacity: a bright gaussian blob inside the lung of its region.
    centers_x = np.array([0.31, 0.69, 0.31, 0.69], dtype=np.float32)
    centers_y = np.array([0.38, 0.38, 0.6, 0.6], dtype=np.float32)
    safe = np.maximum(region, 0)
    ox = _col(centers_x[safe] + rng.uniform(-0.04, 0.04, n))
    oy = _col(centers_y[safe] + rng.uniform(-0.04, 0.04, n))
    sigma = _col(rng.uniform(0.045, 0.07, n))
    amp = _col(rng.uniform(0.35, 0.5, n) * (region >= 0))
    blob = amp * np.exp(-((xs - ox) ** 2 + (ys - oy) ** 2) / (2 * sigma**2))
    img = img + blob * lungs
    img = img * _col(rng.uniform(0.85, 1.15, n)) + _col(
        rng.uniform(-0.04, 0.04, n)
    )
    img = img + rng.normal(0.0, 0.03, img.shape).astype(np.float32)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_synthetic_diagnosis(out_dir, num_examples=600, seed=0, image_size=64):
    """Writes a synthetic chest-picture + history dataset (`image-report`).

    Files: `out_dir/images/00000.png` ... (grayscale PNG) and
    `out_dir/index.csv` with columns `image`, `report`, `pneumonia`,
    `malignancy`, `effusion`. See `synthetic_diagnosis_facts` for how the
    labels depend on both modalities; reports never name a label.

    Args:
        out_dir: str or path-like. Folder to write; created if missing.
        num_examples: int. Number of examples. Defaults to 600.
        seed: int. Non-negative random seed; the same seed writes the same
            bytes. Defaults to 0.
        image_size: int. Image height and width (>= 16). Defaults to 64.

    Returns:
        str. `out_dir`, ready for `read_image_report`.

    Example:
    >>> data = read_image_report(write_synthetic_diagnosis("/tmp/dx"))
    """
    _check_count("write_synthetic_diagnosis", "image_size", image_size, 16)
    facts = synthetic_diagnosis_facts(num_examples, seed)
    out_dir = os.fspath(out_dir)
    rng = np.random.default_rng([seed, 2])
    names = _write_images(
        out_dir,
        num_examples,
        lambda part: _draw_chests(
            facts["opacity_region"][part],
            facts["blunted_angle"][part],
            facts["enlarged_heart"][part],
            image_size,
            rng,
        )[..., None],
    )
    paths = [os.path.join(out_dir, name) for name in names]
    write_image_report(
        out_dir,
        ImageReportData(
            image_paths=paths,
            reports=facts["reports"],
            labels=facts["labels"],
            label_names=DIAGNOSIS_LABELS,
        ),
    )
    return out_dir


# --------------------------------------------------------------------------
# Captions: shapes scenes with reference captions.
# --------------------------------------------------------------------------

SHAPES = ("circle", "square", "triangle")
COLOURS = ("red", "green", "blue", "yellow")
SIZES = ("small", "large")
POSITIONS = ("left", "right", "top", "bottom")
_RGB = np.array(
    [(220, 40, 40), (40, 170, 60), (40, 80, 220), (235, 205, 40)],
    dtype=np.float32,
)
_HALF_EXTENT = np.array([0.11, 0.19], dtype=np.float32)  # small, large
_POS_XY = np.array(
    [(0.27, 0.5), (0.73, 0.5), (0.5, 0.27), (0.5, 0.73)], dtype=np.float32
)
_SHAPE_WORDS = (("circle", "disk"), ("square", "box"), ("triangle",))
_SIZE_WORDS = (("small", "little"), ("large", "big"))
_PLACE = ("on the left", "on the right", "at the top", "at the bottom")
_ONE_OBJECT = (
    "a {a} {pa}",
    "there is a {a} {pa}",
    "{pa} there is a {a}",
    "a picture of a {a} {pa}",
    "one {a} {pa}",
    "a {a} is {pa}",
)
# {a} is the object on the left (or top), {b} the one on the right (bottom).
_TWO_ACROSS = (
    "a {a} left of a {b}",
    "a {a} to the left of a {b}",
    "a {b} right of a {a}",
    "a {b} to the right of a {a}",
    "a {a} on the left, a {b} on the right",
    "there is a {a} to the left of a {b}",
)
_TWO_ABOVE = (
    "a {a} above a {b}",
    "a {b} below a {a}",
    "a {a} at the top, a {b} at the bottom",
    "there is a {a} above a {b}",
    "a {b} under a {a}",
    "a {a} over a {b}",
)
MAX_CAPTION_WORDS = 14


def _sample_scenes(n, rng):
    """Scene table: per image and object slot, shape/colour/size/position
    ids and whether the slot is used (`[n, 2]` int arrays)."""
    two = rng.random(n) < 0.6
    shape = rng.integers(0, len(SHAPES), (n, 2))
    colour = rng.integers(0, len(COLOURS), (n, 2))
    same = (shape[:, 0] == shape[:, 1]) & (colour[:, 0] == colour[:, 1])
    # Two objects always differ in colour or shape, so captions are exact.
    colour[same, 1] = (colour[same, 1] + rng.integers(1, 4, same.sum())) % 4
    size = rng.integers(0, len(SIZES), (n, 2))
    vertical = rng.random(n) < 0.5
    position = np.where(vertical[:, None], [2, 3], [0, 1])
    position[~two, 0] = rng.integers(0, 4, (~two).sum())
    present = np.stack([np.ones(n, bool), two], axis=1)
    return {
        "shape": shape,
        "colour": colour,
        "size": size,
        "position": position,
        "present": present,
    }


def _phrase(rng, scene, i, slot):
    size = _SIZE_WORDS[scene["size"][i, slot]]
    shape = _SHAPE_WORDS[scene["shape"][i, slot]]
    return " ".join(
        (
            size[rng.integers(len(size))],
            COLOURS[scene["colour"][i, slot]],
            shape[rng.integers(len(shape))],
        )
    )


def _captions(rng, scene, i):
    """3-5 distinct reference captions of scene `i`."""
    wanted = int(rng.integers(3, 6))
    if scene["present"][i, 1]:
        across = scene["position"][i, 0] == 0
        templates = _TWO_ACROSS if across else _TWO_ABOVE
    else:
        templates = _ONE_OBJECT
    captions = []
    for _ in range(4):  # a few passes in case synonyms repeat a caption
        for t in rng.permutation(len(templates)):
            text = templates[t].format(
                a=_phrase(rng, scene, i, 0),
                b=_phrase(rng, scene, i, 1),
                pa=_PLACE[scene["position"][i, 0]],
            )
            text = text[0].upper() + text[1:] + "."
            if text not in captions:
                captions.append(text)
            if len(captions) == wanted:
                return captions
    return captions


def _draw_scenes(scene, size, rng):
    """RGB shape scenes, uint8 `[n, size, size, 3]`."""
    n = len(scene["shape"])
    y, x = _grid(size)
    background = rng.uniform(200, 245, n).astype(np.float32)
    img = np.broadcast_to(background[:, None, None, None], (n, size, size, 3))
    img = img.copy()
    for slot in range(2):
        xy = _POS_XY[scene["position"][:, slot]]
        xy = xy + rng.uniform(-0.04, 0.04, (n, 2)).astype(np.float32)
        r = _col(_HALF_EXTENT[scene["size"][:, slot]])
        dx = x - _col(xy[:, 0])
        dy = y - _col(xy[:, 1])
        t = (dy + r) / (1.8 * r)  # 0 at the apex, 1 at the base
        masks = np.stack(
            [
                dx**2 + dy**2 <= r**2,
                np.maximum(np.abs(dx), np.abs(dy)) <= 0.85 * r,
                (t >= 0) & (t <= 1) & (np.abs(dx) <= t * r),
            ]
        )
        mask = masks[scene["shape"][:, slot], np.arange(n)]
        mask &= _col(scene["present"][:, slot]) > 0
        rgb = _RGB[scene["colour"][:, slot]] + rng.uniform(-12, 12, (n, 3))
        img = np.where(mask[..., None], rgb[:, None, None, :], img)
    img = img + rng.normal(0.0, 2.0, img.shape)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def write_synthetic_captions(out_dir, num_images=800, seed=0, image_size=64):
    """Writes a synthetic shapes-captioning dataset (`flickr8k` layout).

    Each image shows one shape at the left, right, top or bottom, or two
    shapes side by side or one above the other (circle, square or
    triangle; red, green, blue or yellow; small or large) on a plain grey
    background. Each has 3-5 reference captions from a small grammar with
    synonyms, e.g. "A small red circle left of a big blue square." (fewer
    than 60 words in all, at most 14 words a caption). A model that sees
    the image can describe it exactly; one that does not cannot.

    Files: `out_dir/Images/00000.png` ... and `out_dir/captions.txt`
    (CSV, header `image,caption`, one caption a row).

    Args:
        out_dir: str or path-like. Folder to write; created if missing.
        num_images: int. Number of images. Defaults to 800.
        seed: int. Non-negative random seed; the same seed writes the same
            bytes. Defaults to 0.
        image_size: int. Image height and width (>= 16). Defaults to 64.

    Returns:
        str. `out_dir`, ready for `read_flickr8k`.

    Example:
    >>> data = read_flickr8k(write_synthetic_captions("/tmp/shapes"))
    """
    _check_count("write_synthetic_captions", "num_images", num_images)
    _check_count("write_synthetic_captions", "seed", seed, minimum=0)
    _check_count("write_synthetic_captions", "image_size", image_size, 16)
    scenes = _sample_scenes(num_images, np.random.default_rng([seed, 0]))
    text_rng = np.random.default_rng([seed, 1])
    pixel_rng = np.random.default_rng([seed, 2])
    out_dir = os.fspath(out_dir)
    image_dir = os.path.join(out_dir, "Images")
    os.makedirs(image_dir, exist_ok=True)
    width = max(5, len(str(num_images - 1)))
    rows = []
    for start in range(0, num_images, _CHUNK):
        part = {k: v[start : start + _CHUNK] for k, v in scenes.items()}
        pixels = _draw_scenes(part, image_size, pixel_rng)
        for offset, image in enumerate(pixels):
            name = f"{start + offset:0{width}d}.png"
            _write_png(os.path.join(image_dir, name), image)
            for caption in _captions(text_rng, scenes, start + offset):
                rows.append((name, caption))
    with open(
        os.path.join(out_dir, "captions.txt"), "w", encoding="utf-8", newline=""
    ) as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("image", "caption"))
        writer.writerows(rows)
    return out_dir


# --------------------------------------------------------------------------
# Shapes reference: the text picks one of two shapes; label = its colour.
# --------------------------------------------------------------------------

REFERENCE_SHAPES = ("circle", "square", "triangle")
REFERENCE_COLOURS = ("red", "green", "blue")
REFERENCE_SIDES = ("left", "right")
# Half-extent of a shape (radius, half side, half height), as a fraction
# of the image side; the target is its position in this range.
REFERENCE_SIZE_RANGE = (0.08, 0.2)
_REF_RGB = np.array(
    [(220, 40, 40), (40, 170, 60), (40, 80, 220)], dtype=np.float32
)
_REF_KIND_WORDS = (("circle", "disk"), ("square", "box"), ("triangle",))
_REF_BY_SIDE = (
    "the shape on the {side}",
    "the object on the {side}",
    "the {side} shape",
    "the {side} one",
    "the thing on the {side} side",
    "the figure on the {side}",
)
_REF_BY_KIND = (
    "the {kind}",
    "that {kind}",
    "the {kind} in the picture",
    "the only {kind}",
)
_REF_SENTENCES = (
    "what colour is {ref}?",
    "what is the colour of {ref}?",
    "name the colour of {ref}.",
    "tell me the colour of {ref}.",
    "which colour does {ref} have?",
    "look at {ref}.",
    "{ref}.",
)
_REF_FILLERS = ("please", "now", "here", "okay", "in this image", "quickly")


def synthetic_reference_facts(num_examples=600, seed=0):
    """Ground truth behind `write_synthetic_shapes_reference`, no pixels.

    Each image holds two shapes, slot 0 in the left half and slot 1 in
    the right half, of two different kinds; colours are drawn
    independently (so they agree a third of the time) and sizes uniformly.
    The text refers to one slot, by side or by kind, and never names a
    colour. The label is the colour of the referred shape, the target its
    size in 0..1. The image alone cannot tell which shape is meant and the
    text alone says nothing of colour or size.

    Args:
        num_examples: int. Number of examples. Defaults to 600.
        seed: int. Non-negative random seed. Defaults to 0.

    Returns:
        dict with `kind`, `colour` (int `[N, 2]`, indices into
        `REFERENCE_SHAPES` and `REFERENCE_COLOURS`), `size` (float `[N,
        2]`, 0..1 rounded to 4 decimals), `referred` (int `[N]`, the slot
        the text means), `by_kind` (bool `[N]`, referred to by kind rather
        than by side), `texts` (list of str), `labels` (list of colour
        names) and `targets` (float `[N]`, the referred shape's size).
    """
    where = "synthetic_reference_facts"
    _check_count(where, "num_examples", num_examples)
    _check_count(where, "seed", seed, minimum=0)
    n = num_examples
    rng = np.random.default_rng([seed, 0])
    first = rng.integers(0, 3, n)
    kind = np.stack([first, (first + rng.integers(1, 3, n)) % 3], axis=1)
    colour = rng.integers(0, 3, (n, 2))
    size = np.round(rng.random((n, 2)), 4)
    referred = rng.integers(0, 2, n)
    by_kind = rng.random(n) < 0.5
    rows = np.arange(n)
    text_rng = np.random.default_rng([seed, 1])
    texts = [
        _reference_text(text_rng, kind[i, referred[i]], referred[i], by_kind[i])
        for i in range(n)
    ]
    return {
        "kind": kind,
        "colour": colour,
        "size": size,
        "referred": referred,
        "by_kind": by_kind,
        "texts": texts,
        "labels": [REFERENCE_COLOURS[c] for c in colour[rows, referred]],
        "targets": size[rows, referred],
    }


def _reference_text(rng, kind, side, by_kind):
    if by_kind:
        words = _REF_KIND_WORDS[kind]
        template = _REF_BY_KIND[rng.integers(len(_REF_BY_KIND))]
        ref = template.format(kind=words[rng.integers(len(words))])
    else:
        template = _REF_BY_SIDE[rng.integers(len(_REF_BY_SIDE))]
        ref = template.format(side=REFERENCE_SIDES[side])
    text = _REF_SENTENCES[rng.integers(len(_REF_SENTENCES))].format(ref=ref)
    if rng.random() < 0.4:
        filler = _REF_FILLERS[rng.integers(len(_REF_FILLERS))]
        if rng.random() < 0.5:
            text = f"{filler}, {text}"
        else:
            text = f"{text[:-1]} {filler}{text[-1]}"
    return text[0].upper() + text[1:]


def _draw_pairs(kind, colour, size, image_size, rng):
    """Two shapes an image, left and right, uint8 `[n, S, S, 3]`."""
    n = len(kind)
    y, x = _grid(image_size)
    lo, hi = REFERENCE_SIZE_RANGE
    background = rng.uniform(200, 245, n).astype(np.float32)
    img = np.broadcast_to(
        background[:, None, None, None], (n, image_size, image_size, 3)
    ).copy()
    for slot in range(2):
        r = (lo + (hi - lo) * size[:, slot]).astype(np.float32)
        cx = 0.25 + 0.5 * slot + rng.uniform(-0.03, 0.03, n)
        cy = 0.5 + rng.uniform(-1, 1, n) * (0.45 - r)
        dx = x - _col(cx)
        dy = y - _col(cy)
        r = _col(r)
        t = (dy + r) / (2 * r)  # 0 at the apex, 1 at the base
        masks = np.stack(
            [
                dx**2 + dy**2 <= r**2,
                np.maximum(np.abs(dx), np.abs(dy)) <= r,
                (t >= 0) & (t <= 1) & (np.abs(dx) <= t * r),
            ]
        )
        mask = masks[kind[:, slot], np.arange(n)]
        rgb = _REF_RGB[colour[:, slot]] + rng.uniform(-12, 12, (n, 3))
        img = np.where(mask[..., None], rgb[:, None, None, :], img)
    img = img + rng.normal(0.0, 2.0, img.shape)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def write_synthetic_shapes_reference(
    out_dir, num_examples=600, seed=0, image_size=64
):
    """Writes a referring-expression dataset (`image-text-labels` layout).

    Each RGB image shows two shapes on a grey background, one in each
    half (two different kinds of circle, square and triangle; each red,
    green or blue; each of its own size). The text refers to one of them,
    by side ("What colour is the shape on the left?") or by kind ("Name
    the colour of the triangle, please."), and never names a colour. The
    label is the colour of the shape referred to (3 classes) and the
    target its size in 0..1. Only a model that reads the text to find the
    shape and looks at the image for its colour gets them right: the text
    alone is at chance, the image alone at 2/3 (right only when it guesses
    the shape or both colours agree). See `synthetic_reference_facts`.

    Files: `out_dir/images/00000.png` ... and `out_dir/index.csv` with
    columns `image`, `text`, `label`, `target`.

    Args:
        out_dir: str or path-like. Folder to write; created if missing.
        num_examples: int. Number of examples. Defaults to 600.
        seed: int. Non-negative random seed; the same seed writes the same
            bytes. Defaults to 0.
        image_size: int. Image height and width (>= 16). Defaults to 64.

    Returns:
        str. `out_dir`, ready for `read_image_text_labels`.

    Example:
    >>> examples = read_image_text_labels(
    ...     write_synthetic_shapes_reference("/tmp/ref"))
    """
    from mmzoo.data.image_text_labels import write_image_text_labels

    where = "write_synthetic_shapes_reference"
    _check_count(where, "image_size", image_size, 16)
    facts = synthetic_reference_facts(num_examples, seed)
    out_dir = os.fspath(out_dir)
    rng = np.random.default_rng([seed, 2])
    names = _write_images(
        out_dir,
        num_examples,
        lambda part: _draw_pairs(
            facts["kind"][part],
            facts["colour"][part],
            facts["size"][part],
            image_size,
            rng,
        ),
    )
    rows = [
        {
            "image": name,
            "text": facts["texts"][i],
            "label": facts["labels"][i],
            "target": round(float(facts["targets"][i]), 4),
        }
        for i, name in enumerate(names)
    ]
    write_image_text_labels(out_dir, rows)
    return out_dir


# --------------------------------------------------------------------------
# Helpers.
# --------------------------------------------------------------------------


def _write_images(out_dir, num_examples, draw):
    """Draws `num_examples` images in vectorized chunks and writes them as
    `out_dir/images/<index>.png`.

    Args:
        out_dir: str. Dataset folder.
        num_examples: int. Images to write.
        draw: callable `(slice) -> uint8 [n, S, S, C]`, the images of the
            examples in the slice, called in order.

    Returns:
        list of str. The file names relative to `out_dir`, in order.
    """
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    width = max(5, len(str(num_examples - 1)))
    names = []
    for start in range(0, num_examples, _CHUNK):
        for offset, image in enumerate(draw(slice(start, start + _CHUNK))):
            name = f"images/{start + offset:0{width}d}.png"
            _write_png(os.path.join(out_dir, name), image)
            names.append(name)
    return names


def _write_png(path, pixels):
    with open(path, "wb") as f:
        f.write(tf.io.encode_png(pixels).numpy())


def _check_count(where, name, value, minimum=1):
    if (
        isinstance(value, bool)
        or not isinstance(value, int | np.integer)
        or value < minimum
    ):
        raise ValueError(
            f"{where}: {name} must be an integer >= {minimum}, got {value!r}"
        )
