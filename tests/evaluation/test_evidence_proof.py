"""The proof that a hit's temporal evidence means something, on a briefly trained HGR: the figures are computed on
a SynthVTR set whose videos hold several events, and the control (each node's weights shuffled across frames)
falls to chance, so the figure would show it if the attention said nothing. The full proof, on a 10-epoch model,
is ``strata evidence CHECKPOINT`` (README)."""
from __future__ import annotations

import json
import math

import pytest
import yaml

from clients.cli import main as strata

pytestmark = pytest.mark.usefixtures("one_thread")

# every video holds two or three events, and a large test split: enough cases for the control's binomial bound
SYNTH = {"videos": 300, "captions_per_video": 4, "seed": 2, "frame_dim": 32, "region_dim": 24,
         "regions_per_frame": 6, "frames": [8, 20], "events_per_video": [2, 3], "test_fraction": 0.3}


@pytest.fixture(scope="module")
def checkpoint(strata_home, tmp_path_factory):
    config = {"model": "hgr", "preset": "fast", "seed": 0, "threads_per_worker": 1,
              "data": {"path": "evidence-synthvtr", "synth": SYNTH, "test_splits": ["tst"]},
              "optim": {"lr": 1e-3, "batch_size": 32, "epochs": 2}}
    path = tmp_path_factory.mktemp("evidence") / "evidence.yaml"
    path.write_text(yaml.safe_dump(config))
    assert strata(["train", str(path)]) == 0
    return strata_home / "runs" / "evidence-seed0" / "best"


def test_the_control_falls_to_chance_and_the_command_reports_the_figures(checkpoint, tmp_path, capsys):
    from evaluation.evidence import AT_LEAST, AT_LEAST_CHANCE_TIMES

    out = tmp_path / "evidence.json"
    rc = strata(["evidence", str(checkpoint), "--json", str(out)])
    result = json.loads(out.read_text())
    assert rc == (0 if result["holds"] else 1)
    assert result["level"] == "action" and result["cases"] >= 30 and result["videos"] >= 10
    chance, cases = result["chance"], result["cases"]
    assert 0 < chance < 1
    # Shuffled weights pick a frame at random: the control is a binomial draw around chance (4 standard errors).
    assert abs(result["control_shuffled"] - chance) <= 4 * math.sqrt(chance * (1 - chance) / cases)
    assert result["times_chance"] == pytest.approx(result["top_frame_in_event"] / chance)
    assert result["holds"] == (result["top_frame_in_event"] >= max(AT_LEAST_CHANCE_TIMES * chance, AT_LEAST))
    assert f"{100 * result['top_frame_in_event']:.1f}%" in capsys.readouterr().out


def test_the_level_read_is_one_attending_verbs_and_a_model_without_one_is_refused():
    from common.errors import ConfigError
    from evaluation.evidence import verb_level
    from training.models.factory import resolve_config

    hanet = resolve_config("hanet", "fast").layout()
    assert verb_level(resolve_config("hgr", "fast").layout(), None, "hgr") == "action"
    assert verb_level(hanet, None, "hanet") == "individual_action"
    with pytest.raises(ConfigError, match="does not attend verbs"):
        verb_level(hanet, "individual_entity", "hanet")
    with pytest.raises(ConfigError, match="no level that attends verbs over frames"):
        verb_level(resolve_config("vsepp", "fast").layout(), None, "vsepp")
