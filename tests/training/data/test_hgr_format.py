"""The HGR-layout reader on tiny datasets written here with h5py, in HGR's default layout unless stated."""
import json
import multiprocessing
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from common.config import from_dict
from common.errors import ConfigError, DataError
from training.data.hgr_format import HGRDataset, HGRFiles, feature_key

FILES = HGRFiles()
DIM, REGIONS, RDIM = 4, 3, 2
# video name -> number of frames; "clip/7" checks the '/' -> '_' key rule
SPLITS = {"trn": {"v1": 25, "v2": 5}, "val": {"v3": 20}, "tst": {"v4": 3, "clip/7": 40}, "tst_unseen": {"v5": 2}}
CAPTIONS = {"v1": ["a dog runs", "a dog is running"], "v2": ["a cat sits"], "v3": ["a man cooks"],
            "v4": ["a dog runs", "a bird sings"], "clip/7": ["a car drives"], "v5": ["a cat runs"]}
GRAPHS = {"a dog runs": [{"ROOT": {"role": "ROOT", "spans": [0, 1, 2], "words": ["a", "dog", "runs"]},
                          "1": {"role": "V", "spans": [2], "words": ["runs"]},
                          "2": {"role": "ARG0", "spans": [0, 1], "words": ["a", "dog"]}},
                         [["1", "2", "ARG0"]]]}


def frames_of(n: int, dim: int = DIM) -> np.ndarray:
    """Frame k holds the value k everywhere, so a sampled array shows which frames were read."""
    return np.repeat(np.arange(n, dtype=np.float32)[:, None], dim, axis=1)


def regions_of(n: int) -> np.ndarray:
    return frames_of(n, REGIONS * RDIM).reshape(n, REGIONS, RDIM)


def write_dataset(root: Path, files: HGRFiles = FILES, regions: bool = True, graphs: bool = True) -> Path:
    def path(pattern: str, split: str = "") -> Path:
        p = root / pattern.replace("{split}", split)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    path(files.captions).write_text(json.dumps(CAPTIONS))
    if graphs:
        path(files.role_graphs).write_text(json.dumps(GRAPHS))
    for split, videos in SPLITS.items():
        np.save(path(files.split_names, split), np.array(list(videos)))
        with h5py.File(path(files.frame_features, split), "a") as f:
            for name, n in videos.items():
                f[feature_key(name)] = frames_of(n)
        if regions:
            with h5py.File(path(files.region_features, split), "a") as f:
                for name, n in videos.items():
                    f[feature_key(name)] = regions_of(n)
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "ds")


def rewrite_feature(root: Path, split: str, name: str, value: np.ndarray, files: HGRFiles = FILES,
                    kind: str = "frame_features") -> None:
    with h5py.File(root / getattr(files, kind).replace("{split}", split), "a") as f:
        del f[feature_key(name)]
        f[feature_key(name)] = value


def test_splits_are_every_names_file(root):
    assert HGRDataset(root).splits == ("trn", "tst", "tst_unseen", "val")


def test_long_video_is_sampled_short_one_kept(root):
    trn = HGRDataset(root).split("trn")
    assert len(trn) == 2 and trn.names == ("v1", "v2") and trn.frame_dim == DIM
    item = trn.video(0)
    assert item.name == "v1" and item.num_frames == 25 and item.regions is None
    assert item.frames.dtype == np.float32 and item.frames.shape == (20, DIM)
    assert item.frames[:, 0].tolist() == [0, 1, 3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16, 18, 19, 20, 21, 23, 24]
    short = trn.video(1)
    assert short.num_frames == 5 and short.frames[:, 0].tolist() == [0, 1, 2, 3, 4]


def test_regions_use_the_same_frames_and_slash_names_map_to_underscore(root):
    tst = HGRDataset(root).split("tst", regions=True)
    assert tst.region_shape == (REGIONS, RDIM)
    item = tst.video(1)
    assert item.name == "clip/7" and item.num_frames == 40
    expected = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 21, 23, 25, 27, 29, 31, 33, 35, 37, 39]
    assert item.frames[:, 0].tolist() == expected
    assert item.regions.shape == (20, REGIONS, RDIM) and item.regions[:, 2, 1].tolist() == expected


def test_max_frames_is_configurable(root):
    item = HGRDataset(root).split("trn", max_frames=4).video(0)
    assert item.frames[:, 0].tolist() == [0, 8, 16, 24]


def test_captions_pairs_and_role_graphs(root):
    ds = HGRDataset(root)
    trn = ds.split("trn")
    assert trn.captions == (("a dog runs", "a dog is running"), ("a cat sits",))
    assert trn.pairs == ((0, 0), (0, 1), (1, 0))
    assert ds.has_role_graphs
    nodes, edges = ds.role_graph("a dog runs")
    assert nodes["1"]["role"] == "V" and edges == [["1", "2", "ARG0"]]
    with pytest.raises(DataError, match=r"sent2rolegraph\.augment\.json: no role graph for sentence 'a cat sits'"):
        ds.role_graph("a cat sits")


def test_role_graphs_are_optional(tmp_path):
    ds = HGRDataset(write_dataset(tmp_path / "ds", graphs=False))
    assert not ds.has_role_graphs
    assert ds.split("val").video(0).num_frames == 20


def test_custom_flat_layout_with_one_shared_feature_file(tmp_path):
    files = from_dict(HGRFiles, {"captions": "captions.json", "role_graphs": "graphs.json",
                                 "split_names": "{split}.npy", "frame_features": "frames.h5",
                                 "region_features": "regions.h5"})
    ds = HGRDataset(write_dataset(tmp_path / "flat", files), files)
    assert ds.splits == ("trn", "tst", "tst_unseen", "val")
    assert ds.split("tst_unseen", regions=True).video(0).regions.shape == (2, REGIONS, RDIM)
    with pytest.raises(ConfigError, match="split_names must contain"):
        from_dict(HGRFiles, {"split_names": "names.npy"})


def test_pickled_and_forked_splits_reopen_their_files(root):
    trn = HGRDataset(root).split("trn", regions=True)
    first = trn.video(0)  # opens the files in this process
    clone = pickle.loads(pickle.dumps(trn))
    np.testing.assert_array_equal(clone.video(0).regions, first.regions)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        child = pool.apply(_read_first_frames, (trn,))
    np.testing.assert_array_equal(child, first.frames)


def _read_first_frames(split):
    return split.video(0).frames


def test_unknown_split_lists_the_available_ones(root):
    with pytest.raises(DataError, match=r"unknown split 'test'; available: trn, tst, tst_unseen, val"):
        HGRDataset(root).split("test")


def test_missing_files(tmp_path, root):
    with pytest.raises(DataError, match="dataset folder not found"):
        HGRDataset(tmp_path / "nowhere")
    (root / FILES.captions).unlink()
    with pytest.raises(DataError, match=r"file not found: .*ref_captions\.json"):
        HGRDataset(root).split("trn")


def test_missing_feature_files(tmp_path):
    root = write_dataset(tmp_path / "ds", regions=False)
    with pytest.raises(DataError, match=r"feature file not found: .*regions/trn_ft\.hdf5"):
        HGRDataset(root).split("trn", regions=True)
    (root / FILES.frame_features.replace("{split}", "val")).unlink()
    with pytest.raises(DataError, match=r"feature file not found: .*resnet152\.pth/val_ft\.hdf5"):
        HGRDataset(root).split("val")


def test_missing_video_in_hdf5(root):
    with h5py.File(root / FILES.frame_features.replace("{split}", "tst"), "a") as f:
        del f["clip_7"]
    with pytest.raises(DataError, match=r"tst_ft\.hdf5: video 'clip/7' is missing \(no dataset 'clip_7'\)"):
        HGRDataset(root).split("tst")


def test_inconsistent_feature_dim(root):
    rewrite_feature(root, "trn", "v2", frames_of(5, dim=DIM + 1))
    with pytest.raises(DataError, match=r"trn_ft\.hdf5: video 'v2': feature shape \(5,\) differs from \(4,\)"):
        HGRDataset(root).split("trn")


def test_wrong_number_of_axes(root):
    rewrite_feature(root, "val", "v3", np.zeros(7, np.float32))
    with pytest.raises(DataError, match=r"val_ft\.hdf5: video 'v3': expected \[frames, dim\]"):
        HGRDataset(root).split("val")


def test_region_frames_must_match_frame_features(root):
    rewrite_feature(root, "val", "v3", regions_of(19), kind="region_features")
    with pytest.raises(DataError, match=r"video 'v3': 19 frames of regions but 20 frames"):
        HGRDataset(root).split("val", regions=True)


@pytest.mark.parametrize("value", [np.nan, -np.inf])
def test_nan_features_fail_on_read_naming_file_video_and_frame(root, value):
    bad = frames_of(25)
    bad[8, 1] = value
    rewrite_feature(root, "trn", "v1", bad)
    trn = HGRDataset(root).split("trn")
    assert trn.video(1).num_frames == 5  # other videos still read
    with pytest.raises(DataError, match=r"trn_ft\.hdf5: video 'v1': features hold NaN/inf \(frame 8\)"):
        trn.video(0)


def test_inf_in_an_unsampled_frame_is_never_read(root):
    bad = frames_of(25)
    bad[7] = np.inf  # frame 7 is not among the 20 sampled
    rewrite_feature(root, "trn", "v1", bad)
    assert np.isfinite(HGRDataset(root).split("trn").video(0).frames).all()


def test_empty_and_missing_captions(root):
    captions = dict(CAPTIONS, v2=["a cat sits", "  "])
    (root / FILES.captions).write_text(json.dumps(captions))
    with pytest.raises(DataError, match=r"ref_captions\.json: video 'v2': caption 1 is empty"):
        HGRDataset(root).split("trn")
    del captions["v2"]
    (root / FILES.captions).write_text(json.dumps(captions))
    with pytest.raises(DataError, match=r"ref_captions\.json: video 'v2' has no captions"):
        HGRDataset(root).split("trn")
    (root / FILES.captions).write_text(json.dumps(dict(CAPTIONS, v2=[])))
    with pytest.raises(DataError, match=r"video 'v2': expected a non-empty list"):
        HGRDataset(root).split("trn")


def test_corrupt_files_are_data_errors(root):
    (root / FILES.frame_features.replace("{split}", "val")).write_bytes(b"not an hdf5 file")
    with pytest.raises(DataError, match=r"val_ft\.hdf5: cannot open as HDF5"):
        HGRDataset(root).split("val")
    (root / FILES.captions).write_text("{broken")
    with pytest.raises(DataError, match=r"ref_captions\.json: not valid JSON"):
        HGRDataset(root).split("trn")
    np.save(root / "public_split" / "trn_names.npy", np.array(["v1", "v1"]))
    with pytest.raises(DataError, match=r"trn_names\.npy: video 'v1' is listed twice"):
        HGRDataset(root).split("trn")


def test_names_files_in_other_encodings_and_corrupt_ones(root):
    names = root / "public_split" / "val_names.npy"
    np.save(names, np.array(["v3"], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"val_names\.npy: holds Python objects .* never loads; save the names as a string"):
        HGRDataset(root).split("val")
    np.save(names, np.array([b"v3"]))
    assert HGRDataset(root).split("val").names == ("v3",)
    names.write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"val_names\.npy: not a readable \.npy array"):
        HGRDataset(root).split("val")
    np.save(names, np.array([["v3"]]))
    with pytest.raises(DataError, match=r"val_names\.npy: expected a non-empty 1-D array"):
        HGRDataset(root).split("val")
