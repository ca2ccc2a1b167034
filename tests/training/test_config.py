"""The training config's format version: absent means 1, newer versions are refused before any work."""
from __future__ import annotations

from pathlib import Path

import pytest
import rasterio
import yaml

from geoseg.errors import ConfigError, InputError
from geoseg.training.config import CONFIG_VERSION, TrainConfig, load_config

ROOT = Path(__file__).resolve().parents[2]


def _copy(tmp_path: Path, **changes: object) -> Path:
    raw = yaml.safe_load((ROOT / "configs" / "zion_landcover.yaml").read_text())
    raw.update(changes)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_configs_without_a_version_are_the_first_format(tmp_path: Path) -> None:
    assert load_config(_copy(tmp_path)).format_version == CONFIG_VERSION == 1


def test_a_newer_config_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="format 99 is newer than this geoseg reads .*upgrade geoseg") as err:
        load_config(_copy(tmp_path, format_version=99))
    assert isinstance(err.value, InputError)


def test_bad_settings_are_config_errors_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config.yaml: tile_size: "):
        load_config(_copy(tmp_path, tile_size=3))


@pytest.mark.parametrize("changes, message", [
    ({"epoch": 3}, "unknown key 'epoch'; "),
    ({"output_dri": "elsewhere"}, "unknown key 'output_dri'; did you mean 'output_dir'"),
    ({"train": {"epoch": 3}}, "unknown key 'train.epoch'; did you mean 'train.epochs'"),
    ({"validation": {"start": 832, "stopp": 992}}, "unknown key 'validation.stopp'; did you mean 'validation.stop'"),
])
def test_misspelt_keys_are_refused_with_a_suggestion(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_copy(tmp_path, **changes))


def test_misspelt_keys_in_lists_are_refused(tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / "configs" / "zion_landcover.yaml").read_text())
    raw["classes"][0]["colour"] = raw["classes"][0].pop("color")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="unknown key 'classes.colour'; did you mean 'classes.color'"):
        load_config(path)


def test_a_validation_block_without_labels_is_refused_before_training(tmp_path: Path) -> None:
    from geoseg.training.loop import Trainer
    from tests.conftest import ZION, ZION_LABELS, tiny_config

    with rasterio.open(ZION_LABELS) as src:
        data, profile = src.read(1), src.profile.copy()
    data[200:260] = 255                                   # no label in rows 200..259
    labels = tmp_path / "labels.tif"
    profile.update(nodata=255)
    with rasterio.open(labels, "w", **profile) as dst:
        dst.write(data, 1)
    config = TrainConfig.model_validate(tiny_config(tmp_path, ZION, labels,
                                                    validation={"start": 210, "stop": 250, "buffer": 8}))
    with pytest.raises(ConfigError, match=r"validation block \(rows 210..250\) holds no labelled pixel"):
        Trainer(config)
def test_training_names_the_missing_data_and_where_to_look(tmp_path: Path) -> None:
    """The full default-model config's scene does not ship: the error names the config and the key."""
    config = _copy(tmp_path)
    assert load_config(config).name == "zion_landcover"               # reading it for its legend works
    with pytest.raises(ConfigError, match=r"config.yaml: scenes\[0\].scene: .*landsat8_zion_b2345.tif not found; "
                       "get the data the config's comments point to"):
        load_config(config, require_data=True)
