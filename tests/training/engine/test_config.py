"""Train configs are typed and loud: every shipped config loads, unknown keys and bad values are errors."""
from __future__ import annotations

import pytest

from common.errors import ConfigError
from training.engine.config import TRAIN_CONFIG_DIR, load_train_config, run_dir
from training.models import list_models, resolve_config


@pytest.mark.parametrize("path", sorted(TRAIN_CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_loads_and_names_a_model_preset(path):
    config = load_train_config(path)
    assert config.model in list_models()
    resolve_config(config.model, config.preset, config.model_overrides)
    assert config.run_name == f"{path.stem}-seed{config.seed}"


def test_configs_cover_every_model_on_synthvtr():
    names = {p.stem for p in TRAIN_CONFIG_DIR.glob("*_synthvtr.yaml")}
    assert names == {f"{m}_synthvtr" for m in list_models()}


def test_name_lookup_overrides_and_absolute_run_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("STRATA_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    config = load_train_config("hgr_synthvtr", ["optim.epochs=3", "seed=7", "data.path=elsewhere"])
    assert config.optim.epochs == 3 and config.seed == 7
    assert config.run_name == "hgr_synthvtr-seed7"
    # A path on the command line is relative to the current folder, and names existing data: no generator.
    assert config.data.resolved_path() == (tmp_path / "elsewhere").resolve()
    assert config.data.synth is None
    assert run_dir(config).is_absolute()


def test_a_config_files_relative_path_lives_under_the_home_and_keeps_its_generator(monkeypatch, tmp_path):
    monkeypatch.setenv("STRATA_HOME", str(tmp_path / "home"))
    config = load_train_config("hgr_synthvtr")
    assert config.data.resolved_path() == (tmp_path / "home" / "data" / "synthvtr").resolve()
    assert config.data.synth == {"seed": 0}
    # Asking for generation on the command line keeps it, at the path given there.
    monkeypatch.chdir(tmp_path)
    config = load_train_config("hgr_synthvtr", ["data.path=mine", "data.synth.videos=40"])
    assert config.data.resolved_path() == tmp_path / "mine" and config.data.synth == {"seed": 0, "videos": 40}


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=0.1", "unknown key(s) lrr"),
    ("optim.epochs=ten", "expected an integer"),
    ("optim.schedule=cosine", "is not one of"),
    ("workers=-1", "workers must be >= 0"),
    ("workers=3", "not divisible by 3 workers"),
    ("data.role_switch_from_epoch=0", "role_switch_from_epoch must be >= 1, got 0"),
    ("data.role_switch_from_epoch=2", "set role_switch_negatives too"),
    ("nonsense", "not of the form key.path=value"),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_train_config("hgr_synthvtr", [override])


def test_the_twins_cannot_join_after_the_last_epoch():
    with pytest.raises(ConfigError, match=r"data.role_switch_from_epoch 11 is after the last epoch \(optim.epochs 10\)"):
        load_train_config("hgr_synthvtr_roles", ["data.role_switch_from_epoch=11"])


def test_missing_config_lists_the_known_ones():
    with pytest.raises(ConfigError, match="hgr_synthvtr"):
        load_train_config("no_such_config")


def test_screen_lays_the_small_short_val_setup_over_the_config_and_the_overrides_over_both(monkeypatch, tmp_path):
    monkeypatch.setenv("STRATA_HOME", str(tmp_path / "home"))
    config = load_train_config("hgr_synthvtr", ["optim.lr=0.01", "data.role_switch_negatives=true"], screen=True)
    assert config.data.synth == {"seed": 0, "videos": 1000}           # the config's generator, a smaller set
    assert config.data.resolved_path() == (tmp_path / "home" / "data" / "synthvtr-screen").resolve()
    assert config.data.test_splits == ("val",) and config.optim.epochs == 3
    assert config.optim.lr == 0.01 and config.data.role_switch_negatives and config.model == "hgr"
    assert config.run_name == "hgr_synthvtr-screen-seed0"
    assert load_train_config("hgr_synthvtr", ["optim.epochs=5"], screen=True).optim.epochs == 5


# The commands RESULTS.md gives for each model's chosen change of the role issue, which its `_roles` preset names.
ROLE_CHANGES = {
    "vsrnet": ["data.role_switch_negatives=true", "model_overrides=[word_roles=true]"],
    "visern": ["data.role_switch_negatives=true", "model_overrides=[word_roles=true]"],
    "hgr": ["data.role_switch_negatives=true", "data.role_switch_attested=true", "data.role_switch_attested_by=pairs",
            'model_overrides=["loss.twin_levels=[action,entity]","loss.twin_margin=0.05"]'],
    "hanet": ["data.role_switch_negatives=true", "data.role_switch_attested=true",
              'model_overrides=["loss.twin_levels=[local_action,local_entity]","loss.twin_margin=0.05",'
              'event_from_graph=true]'],
    "mcsan": ["data.role_switch_negatives=true", "data.role_switch_attested=true"],
}


@pytest.mark.parametrize("model", sorted(ROLE_CHANGES))
def test_a_roles_preset_is_its_base_config_with_the_reported_change(model):
    preset = load_train_config(f"{model}_synthvtr_roles", ["seed=2"])
    assert preset.run_name == f"{model}_synthvtr_roles-seed2"
    reported = load_train_config(f"{model}_synthvtr", ROLE_CHANGES[model] + ["seed=2", f"run_name={preset.run_name}"])
    assert preset == reported
    assert preset != load_train_config(f"{model}_synthvtr", ["seed=2", f"run_name={preset.run_name}"])


def test_extends_lays_a_file_over_its_base_and_refuses_a_circle(tmp_path):
    (tmp_path / "mine.yaml").write_text("extends: hgr_synthvtr\noptim: {epochs: 4}\n")
    (tmp_path / "more.yaml").write_text("extends: mine.yaml\nseed: 3\n")      # a path beside the file
    config = load_train_config(tmp_path / "more.yaml")
    assert (config.model, config.optim.epochs, config.optim.lr, config.seed) == ("hgr", 4, 1e-3, 3)
    (tmp_path / "mine.yaml").write_text("extends: more.yaml\n")
    with pytest.raises(ConfigError, match="circle: more -> mine -> more"):
        load_train_config(tmp_path / "more.yaml")
    (tmp_path / "mine.yaml").write_text("extends: [hgr_synthvtr]\n")
    with pytest.raises(ConfigError, match="extends must name a train config"):
        load_train_config(tmp_path / "more.yaml")
    (tmp_path / "mine.yaml").write_text("extends: no_such_config\n")
    with pytest.raises(ConfigError, match="train config not found"):
        load_train_config(tmp_path / "more.yaml")
