"""The per-paper commands for real features, on a tiny fixture in HGR's exact release layout."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from clients.cli import main as strata

# In-process training sets torch's process-wide thread count (threads_per_worker); restored after the module.
pytestmark = pytest.mark.usefixtures("one_thread")

SENTENCES = ["a man is cooking food in the kitchen", "a woman is singing a song on stage",
             "a dog chases a cat in the park", "a boy rides a bike down the street",
             "two people are playing tennis", "a girl is reading a book on the sofa"]


def write_hgr_release(root, frame_dim=48, regions=5, region_dim=40):
    """annotation/RET/ref_captions.json, public_split/*_names.npy, ordered_feature/... HDF5 per split."""
    rng = np.random.default_rng(0)
    splits = {"trn": [f"video{i}" for i in range(12)], "val": ["video12", "video13", "video14"],
              "tst": ["video15", "video16", "video17"]}
    captions = {}
    for split, names in splits.items():
        (root / "public_split").mkdir(parents=True, exist_ok=True)
        np.save(root / "public_split" / f"{split}_names.npy", np.array(names))
        for folder, shape in (("ordered_feature/SA/resnet152.pth", (frame_dim,)),
                              ("ordered_feature/regions", (regions, region_dim))):
            (root / folder).mkdir(parents=True, exist_ok=True)
            with h5py.File(root / folder / f"{split}_ft.hdf5", "w") as f:
                for i, name in enumerate(names):
                    frames = 25 + int(name[5:]) % 7  # more frames than HGR's 20: sampled with round(linspace)
                    f[name] = rng.standard_normal((frames, *shape)).astype(np.float32)
        for i, name in enumerate(names):
            captions[name] = [SENTENCES[(int(name[5:]) + k) % len(SENTENCES)] + f" number {k}" for k in range(2)]
    (root / "annotation" / "RET").mkdir(parents=True)
    (root / "annotation" / "RET" / "ref_captions.json").write_text(json.dumps(captions))


@pytest.mark.parametrize("config", ["hgr_msrvtt", "vsrnet_msrvtt"])
def test_paper_command_trains_and_evaluates_on_the_release_layout(strata_home, tmp_path, config):
    data = tmp_path / "msrvtt"
    write_hgr_release(data)
    overrides = ["--set", f"data.path={data}", "--set", "preset=fast", "--set", "optim.epochs=1",
                 "--set", "optim.batch_size=8"]
    assert strata(["train", config, *overrides]) == 0
    run = strata_home / "runs" / f"{config}-seed0"
    test = json.loads((run / "test_metrics.json").read_text())
    assert test["splits"]["tst"]["videos"] == 3 and test["splits"]["tst"]["captions"] == 6
    saved = json.loads((run / "best" / "config.json").read_text())
    assert saved["config"]["video"]["frame_dim"] == 48  # feature sizes come from the data
    if config == "vsrnet_msrvtt":
        assert saved["config"]["video"]["region_dim"] == 40
