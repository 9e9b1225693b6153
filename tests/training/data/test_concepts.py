import json
from dataclasses import dataclass

import numpy as np
import pytest

from common.config import from_dict
from common.errors import ConfigError, DataError
from training.data.concepts import ConceptConfig, ConceptVocab


@dataclass(frozen=True)
class Caption:
    """The concept fields of a parsed caption (lemmas), as training.text.parser.ParsedCaption carries them."""

    verbs: tuple[str, ...]
    nouns: tuple[str, ...]
    triplets: tuple[tuple[str, str, str], ...]


CAPTIONS = [
    Caption(("chase",), ("dog", "cat", "dog"), (("dog", "chase", "cat"),)),
    Caption(("chase", "run"), ("cat", "grass"), (("cat", "chase", "mouse"), ("dog", "chase", "cat"))),
    Caption(("run",), ("man",), ()),
    Caption(("cook",), ("man", "kitchen"), (("man", "cook", "food"),)),
]


def test_top_k_by_caption_frequency_ties_alphabetical():
    vocab = ConceptVocab.build(CAPTIONS, ConceptConfig(num_verbs=2, num_nouns=3, num_triplets=2))
    assert vocab.verbs == ("chase", "run")                 # 2, 2 (cook 1 is cut)
    assert vocab.nouns == ("cat", "man", "dog")            # 2, 2, then dog 1 (counted once per caption) before grass
    assert vocab.triplets == (("dog", "chase", "cat"), ("cat", "chase", "mouse"))


def test_targets_of_a_caption_and_of_a_video():
    vocab = ConceptVocab.build(CAPTIONS, ConceptConfig(num_verbs=2, num_nouns=3, num_triplets=2))
    one = vocab.targets([CAPTIONS[0]])
    assert one["verbs"].tolist() == [1, 0]
    assert one["nouns"].tolist() == [1, 0, 1]
    assert one["triplets"].tolist() == [1, 0]
    assert all(v.dtype == np.float32 for v in one.values())
    video = vocab.targets(CAPTIONS[2:])  # "cook", "kitchen", ("man", "cook", "food") are out of vocabulary
    assert video["verbs"].tolist() == [0, 1]
    assert video["nouns"].tolist() == [0, 1, 0]
    assert video["triplets"].tolist() == [0, 0]


def test_save_load_round_trip(tmp_path):
    vocab = ConceptVocab.build(CAPTIONS)
    assert (vocab.size("verbs"), vocab.size("nouns"), vocab.size("triplets")) == (3, 5, 3)
    vocab.save(tmp_path / "concepts.json")
    loaded = ConceptVocab.load(tmp_path / "concepts.json")
    assert loaded.to_json() == vocab.to_json()
    assert loaded.triplets[0] == ("dog", "chase", "cat")


def test_bad_files_and_inputs(tmp_path):
    path = tmp_path / "concepts.json"
    with pytest.raises(DataError, match="concept vocabulary not found"):
        ConceptVocab.load(path)
    path.write_text(json.dumps({"verbs": [], "nouns": []}))
    with pytest.raises(DataError, match="expected exactly the keys"):
        ConceptVocab.load(path)
    path.write_text(json.dumps({"verbs": ["run", "run"], "nouns": [], "triplets": []}))
    with pytest.raises(DataError, match="concepts.json: .*verbs lists 'run' twice"):
        ConceptVocab.load(path)
    path.write_text(json.dumps({"verbs": [], "nouns": [], "triplets": [["dog", "run"]]}))
    with pytest.raises(DataError, match="triplet must be"):
        ConceptVocab.load(path)
    with pytest.raises(DataError, match="caption 0: a parsed caption needs verbs, nouns and triplets"):
        ConceptVocab.build([object()])
    with pytest.raises(ConfigError, match="num_triplets must be >= 1"):
        from_dict(ConceptConfig, {"num_triplets": 0})


def test_vocabulary_from_our_parser():
    from training.text.parser import parse_captions

    parsed = parse_captions(["a dog chases a cat on the grass", "a cat is chased by a dog",
                             "a man is cooking food in a kitchen"])
    vocab = ConceptVocab.build(parsed, ConceptConfig(num_verbs=1, num_nouns=2, num_triplets=1))
    assert vocab.verbs == ("chase",) and vocab.nouns == ("cat", "dog")
    assert vocab.triplets == (("dog", "chase", "cat"),)  # the passive caption gives the same triplet
    assert vocab.targets(parsed[2:])["verbs"].tolist() == [0]


WRITER = """
import sys, time
from pathlib import Path
from training.data.concepts import ConceptVocab
from training.text.vocab import Vocabulary
kind, tag, out, go = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
deadline = time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.005)
words = [f"{tag}{i}" for i in range(20000)]
item = (ConceptVocab(words, words, [(w, "chase", w) for w in words]) if kind == "concepts"
        else Vocabulary.build([words]))
for _ in range(25):
    item.save(out)
"""


@pytest.mark.parametrize("kind", ["concepts", "vocabulary"])
def test_files_written_by_two_processes_at_once_are_always_read_whole(tmp_path, kind):
    """Two processes preparing one dataset write its concept (or vocabulary) file at once, many times, while this
    one reads it: every read is one writer's file, whole."""
    import subprocess
    import sys
    import time

    from training.text.vocab import Vocabulary

    out, go = tmp_path / f"{kind}.json", tmp_path / "go"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, kind, tag, str(out), str(go)]) for tag in ("a", "b")]
    go.touch()
    seen = set()
    deadline = time.monotonic() + 120
    while any(w.poll() is None for w in writers) and time.monotonic() < deadline:
        if out.exists():
            loaded = ConceptVocab.load(out) if kind == "concepts" else Vocabulary.load(out)
            words = loaded.verbs if kind == "concepts" else [w for w in loaded.words if w[:1] in "ab"]
            assert len(words) == 20000 and len({w[0] for w in words}) == 1   # one writer's, all of it
            seen.add(words[0][0])
    assert [w.wait(timeout=60) for w in writers] == [0, 0]
    assert seen and not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
