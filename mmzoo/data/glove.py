"""Word vectors from a GloVe text file, for the words of a vocabulary.

The GloVe text format is one word per line followed by its D values,
separated by single spaces (`the 0.418 0.24968 -0.41242 ...`). The file
is streamed and only the vocabulary's words are kept, so memory is bounded
by the vocabulary, not by the file (the 840B file has 2.2 million words).

Reference:
    Pennington, Socher and Manning, "GloVe: Global Vectors for Word
    Representation", EMNLP 2014. https://nlp.stanford.edu/projects/glove/
"""

import numpy as np

from mmzoo.data.textfile import open_text


def read_glove(path, words):
    """Looks up `words` in the GloVe file at `path`.

    Args:
        path: str. A GloVe text file (UTF-8).
        words: list of str. The vocabulary, indexed by id.

    Returns:
        A tuple `(vectors float32 [len(words), D], found bool
        [len(words)])`; rows of words not in the file are zeros.

    Raises:
        ValueError: naming the file and line of a line that does not hold
            a word and D numbers (D is set by the first line) or is not
            UTF-8.
    """
    index = {}
    for i, word in enumerate(words):
        index.setdefault(word, []).append(i)
    vectors = None
    found = np.zeros(len(words), bool)
    dimension = None
    with open_text(path) as f:
        for number, line in enumerate(f, start=1):
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            if dimension is None:
                dimension = len(parts) - 1
                if dimension < 1:
                    raise ValueError(
                        f"{path}:{number}: expected a word and its vector "
                        f"values, got {line[:80]!r}"
                    )
                vectors = np.zeros((len(words), dimension), "float32")
            if len(parts) < dimension + 1:
                raise ValueError(
                    f"{path}:{number}: expected a word and {dimension} "
                    f"values (as on line 1), got {len(parts) - 1} values"
                )
            # A few GloVe words contain spaces: the values are the last D.
            word = " ".join(parts[:-dimension])
            rows = index.get(word)
            if not rows:
                continue
            try:
                values = np.asarray(parts[-dimension:], "float32")
            except ValueError:
                raise ValueError(
                    f"{path}:{number}: the values of {word!r} are not all "
                    "numbers"
                ) from None
            vectors[rows] = values
            found[rows] = True
    if dimension is None:
        raise ValueError(f"{path}: empty GloVe file")
    return vectors, found


def glove_dimension(path):
    """The vector width of the GloVe file at `path` (from its first line).

    Raises:
        ValueError: naming the file when it is missing, empty or its first
            line holds no values or is not UTF-8.
    """
    try:
        with open_text(path) as f:
            first = f.readline()
    except OSError as error:
        raise ValueError(f"glove_path {path}: {error.strerror}") from None
    dimension = len(first.rstrip("\n").rstrip(" ").split(" ")) - 1
    if dimension < 1:
        raise ValueError(
            f"{path}:1: expected a word and its vector values, got "
            f"{first[:80]!r}"
        )
    return dimension


def glove_words(path, limit):
    """The first `limit` words of the GloVe file at `path` that are single
    caption tokens (GloVe files list words by descending frequency).

    Args:
        path: str. A GloVe text file.
        limit: int. Most words returned.

    Returns:
        list of str, in file order. Words that the caption tokenizer would
        change or split (punctuation, upper case) are skipped.

    Raises:
        ValueError: naming the file and line of bytes that are not UTF-8.
    """
    from mmzoo.data.text import tokenize_py

    words = []
    if limit <= 0:
        return words
    with open_text(path) as f:
        for line in f:
            word = line.split(" ", 1)[0]
            if tokenize_py(word) == [word]:
                words.append(word)
                if len(words) == limit:
                    break
    return words
