"""SynthVTR generator: determinism, HGR format, splits, role graphs, hard negatives, overwrite rules."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from common.config import from_dict, to_dict
from common.errors import ConfigError, DataError
from training.data.hgr_format import HGRDataset
from training.synth.config import SynthConfig
from training.synth.generator import (ANNOTATIONS, CAPTIONS, CONFIG, FRAME_FEATURES, HARD_NEGATIVES,
                                      REGION_FEATURES, SYNTH_FILES, TRUE_ROLE_GRAPHS, generate)
from training.synth.perturb import PERTURBATIONS
from training.text.roles import ROLES

SMALL = SynthConfig(videos=40, captions_per_video=3, seed=3, frames=(6, 12), frame_dim=16, region_dim=8,
                    regions_per_frame=5)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "a"
    generate(SMALL, out, progress=False)
    return out


def _json(path):
    return json.loads(path.read_text())


def _arrays(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}


def test_same_config_gives_identical_data_wherever_written(dataset, tmp_path):
    other = tmp_path / "elsewhere" / "b"
    generate(SMALL, other, progress=False)
    for name in (FRAME_FEATURES, REGION_FEATURES):
        a, b = _arrays(dataset / name), _arrays(other / name)
        assert a.keys() == b.keys() and len(a) == SMALL.videos
        for k in a:
            assert a[k].dtype == np.float32 and np.array_equal(a[k], b[k])
    for name in (CAPTIONS, TRUE_ROLE_GRAPHS, HARD_NEGATIVES, ANNOTATIONS, CONFIG):
        assert _json(dataset / name) == _json(other / name)
    for split in ("trn", "val", "tst", "tst_unseen"):
        assert np.load(dataset / f"{split}_names.npy").tolist() == np.load(other / f"{split}_names.npy").tolist()


def test_another_seed_gives_other_data(dataset, tmp_path):
    generate(dataclasses.replace(SMALL, seed=4), tmp_path / "c", progress=False)
    assert _json(dataset / CAPTIONS) != _json(tmp_path / "c" / CAPTIONS)


def test_the_hgr_reader_loads_every_split_with_regions(dataset):
    ds = HGRDataset(dataset, SYNTH_FILES)
    assert ds.splits == ("trn", "tst", "tst_unseen", "val")
    sizes = SMALL.split_sizes()
    for split in ds.splits:
        s = ds.split(split, regions=True)
        assert len(s) == sizes[split]
        item = s.video(0)
        assert item.frames.shape[1] == SMALL.frame_dim
        assert item.regions.shape[1:] == (SMALL.regions_per_frame, SMALL.region_dim)
        assert SMALL.frames[0] <= item.num_frames <= SMALL.frames[1]
        assert all(len(c) == SMALL.captions_per_video for c in s.captions)


def test_splits_are_disjoint_and_unseen_combinations_never_occur_in_training(dataset):
    names = {s: set(np.load(dataset / f"{s}_names.npy").tolist()) for s in ("trn", "val", "tst", "tst_unseen")}
    everything = set().union(*names.values())
    assert len(everything) == sum(len(v) for v in names.values()) == SMALL.videos
    heldout = {tuple(t) for t in _json(dataset / CONFIG)["heldout_triples"]}
    assert heldout
    ann = _json(dataset / ANNOTATIONS)
    events = {v: {tuple(e) for e in ann[v]["events"]} for v in everything}
    for split in ("trn", "val", "tst"):
        assert all(not (events[v] & heldout) for v in names[split]), split
    assert all(events[v] & heldout for v in names["tst_unseen"])


def test_true_role_graphs_match_their_sentences(dataset):
    graphs = _json(dataset / TRUE_ROLE_GRAPHS)
    captions = _json(dataset / CAPTIONS)
    negatives = _json(dataset / HARD_NEGATIVES)
    sentences = {c for caps in captions.values() for c in caps}
    sentences |= {s for negs in negatives.values() for s in negs.values()}
    assert sentences == set(graphs)
    for sentence, (nodes, edges) in graphs.items():
        words = sentence.split()
        assert list(nodes)[0] == "ROOT" and nodes["ROOT"]["words"] == words
        assert list(nodes)[1:] == [str(i) for i in range(1, len(nodes))]
        for node in nodes.values():
            assert node["words"] == [words[i] for i in node["spans"]]
        assert edges and all(nodes[v]["role"] == "V" and nodes[a]["role"] == r and r in ROLES for v, a, r in edges)
        verbs = [k for k, n in nodes.items() if n["role"] == "V"]
        assert all(any(e[0] == v and e[2] == "ARG0" for e in edges) for v in verbs)


def test_hard_negatives_cover_both_test_splits_and_differ_from_the_positive(dataset):
    negatives = _json(dataset / HARD_NEGATIVES)
    captions = _json(dataset / CAPTIONS)
    tests = set(np.load(dataset / "tst_names.npy").tolist()) | set(np.load(dataset / "tst_unseen_names.npy").tolist())
    assert set(negatives) == tests
    for video, negs in negatives.items():
        assert negs["positive"] == captions[video][0]
        assert set(negs) - {"positive"} <= set(PERTURBATIONS)
        assert {"replace_action", "replace_person", "replace_scene", "incomplete_event"} <= set(negs)
        assert len(set(negs.values())) == len(negs)  # every negative differs from the positive and each other


def test_an_existing_synth_folder_is_skipped_when_identical_and_rewritten_otherwise(dataset, tmp_path):
    out = tmp_path / "d"
    _, wrote = generate(SMALL, out, progress=False)
    assert wrote
    _, wrote = generate(SMALL, out, progress=False)
    assert not wrote
    bigger = dataclasses.replace(SMALL, videos=45)
    summary, wrote = generate(bigger, out, progress=False)
    assert wrote and summary["config"]["videos"] == 45 and len(_json(out / CAPTIONS)) == 45


def test_another_generator_version_is_regenerated_with_data_synth_and_refused_without(dataset, tmp_path):
    """A folder of another SynthVTR version is never silently reused: a config with data.synth regenerates it,
    a plain data.path refuses it; its caches are keyed by the folder's generator config too."""
    from training.engine.config import DataConfig
    from training.engine.data import cache_dir, check_dataset, ensure_dataset

    out = tmp_path / "old"
    generate(SMALL, out, progress=False)
    summary = _json(out / CONFIG)
    before = cache_dir(out)
    (out / CONFIG).write_text(json.dumps({**summary, "version": "synthvtr-2"}))
    assert cache_dir(out) != before
    plain = DataConfig(path=str(out))
    with pytest.raises(DataError, match="synthvtr-2.*regenerate"):
        check_dataset(plain, ("trn",))
    with pytest.raises(DataError, match="synthvtr-2"):
        ensure_dataset(plain, progress=False)
    ensure_dataset(DataConfig(path=str(out), synth=dataclasses.asdict(SMALL)), progress=False)
    assert _json(out / CONFIG)["version"] == summary["version"] and cache_dir(out) == before


def test_the_whole_frame_region_shows_the_scene(monkeypatch):
    """SynthVTR 3: one region of every frame is the whole frame, the network applied to the scene's look (still,
    idle, no action). Without jitter and noise it is exactly that in every frame; without ``scene_region`` no
    region is."""
    from training.synth import features
    from training.synth.world import World

    monkeypatch.setattr(features, "INSTANCE_JITTER", 0.0)
    config = dataclasses.replace(SMALL, noise=0.0, miss_rate=0.0)
    world = World(config.seed, config.heldout_triples)
    renderer = features.Renderer(world, config)
    plan = world.sample_plan(np.random.default_rng(0), 1, unseen=False)
    look = renderer.scene_look[renderer.scene_index[plan.scene]]
    x = np.concatenate([look, renderer.role_emb[features.IDLE], np.zeros(features.ACTION_DIM), [0, 0, 0, 1, 0, 0]])
    whole_frame = np.tanh(np.maximum(x @ renderer.w1 + renderer.b1, 0) @ renderer.w2)
    gap = lambda regions: np.abs(regions - whole_frame).max(axis=-1).min(axis=-1)  # noqa: E731 - per frame
    assert gap(renderer.render(plan, np.random.default_rng(1)).regions).max() < 1e-5
    plain = features.Renderer(world, dataclasses.replace(config, scene_region=False))
    assert gap(plain.render(plan, np.random.default_rng(1)).regions).min() > 1e-3
    with pytest.raises(ValueError, match="whole-frame region"):
        SynthConfig(regions_per_frame=4, distractors=2)


def test_a_foreign_non_empty_folder_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        generate(SMALL, tmp_path, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("bad", [
    {"events_per_video": [2, 4]},
    {"frames": [4, 10]},                       # 3 events need 6 frames
    {"regions_per_frame": 3, "distractors": 2},
    {"val_fraction": 0.5, "test_fraction": 0.3, "unseen_fraction": 0.2},
    {"heldout_triples": 0.0},
    {"unknown_knob": 1},
])
def test_bad_configs_are_refused_naming_the_key(bad):
    with pytest.raises(ConfigError):
        from_dict(SynthConfig, bad, where="synth")


def test_the_synth_modules_import_without_torch_h5py_or_sklearn():
    code = ("import sys, training.synth.cli, training.synth.generator, training.synth.check; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'h5py', 'sklearn'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


GENERATE = """
import json, sys, time
from pathlib import Path
from common.config import from_dict
from training.synth.config import SynthConfig
from training.synth.generator import generate
config, out, go = from_dict(SynthConfig, json.loads(sys.argv[1])), Path(sys.argv[2]), Path(sys.argv[3])
deadline = time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.005)
print(generate(config, out, progress=False)[1])
"""


def test_two_processes_generating_one_folder_at_once_write_it_once(dataset, tmp_path):
    """Started together on one folder: one writes it, the other waits and finds it written (never removing the
    files of the generation in progress); the folder is the same dataset as one generated alone."""
    out, go = tmp_path / "shared", tmp_path / "go"
    config = json.dumps(to_dict(SMALL))
    runs = [subprocess.Popen([sys.executable, "-c", GENERATE, config, str(out), str(go)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    go.touch()
    results = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-2000:] for _, err in results]
    assert sorted(stdout.strip() for stdout, _ in results) == ["False", "True"]
    for name in (CAPTIONS, TRUE_ROLE_GRAPHS, HARD_NEGATIVES, ANNOTATIONS):
        assert _json(out / name) == _json(dataset / name), name
    for name in (FRAME_FEATURES, REGION_FEATURES):
        mine, alone = _arrays(out / name), _arrays(dataset / name)
        assert mine.keys() == alone.keys() and all(np.array_equal(mine[k], alone[k]) for k in mine), name
