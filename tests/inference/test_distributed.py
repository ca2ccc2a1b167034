"""Many scenes on a real Dask LocalCluster (2 worker processes, one thread each): same bytes as in-process,
a corrupt scene recorded while the others finish, resume redoing only what is missing, and settings that
differ refused on resume."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rasterio.windows import Window

import geoseg
from geoseg.errors import ConfigError, InputError
from geoseg.inference.distributed import MANIFEST_NAME, file_sha256, predict_many
from tests.conftest import ZION, tiny_bundle, tiny_meta, write_crop

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """The tiny Zion bundle and three small crops of the Zion scene."""
    folder = tmp_path_factory.mktemp("scenes")
    meta = tiny_meta(["blue", "green", "red", "nir"], 4, gsd=30.0, mean=10000.0, std=2500.0, input_dtype="uint16")
    model = folder / "zion_tiny.safetensors"
    tiny_bundle(meta).save(model)
    scenes = [write_crop(ZION, folder / f"scene{i}.tif", Window(i * 40, i * 30, 200, 160)) for i in range(3)]
    return model, scenes


def _manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST_NAME).read_text())


def test_maps_are_byte_identical_to_single_process(tmp_path: Path, client: object,
                                                   inputs: tuple[Path, list[Path]]) -> None:
    model, scenes = inputs
    out = tmp_path / "maps"
    out.mkdir()
    manifest = predict_many(scenes, out, model, scheduler=client)
    assert [r.status for r in manifest.scenes] == ["done"] * 3
    for scene, record in zip(scenes, manifest.scenes):
        single = tmp_path / f"{scene.stem}-single.tif"
        geoseg.predict(scene, single, model)
        assert Path(record.output) == out / f"{scene.stem}.tif"
        assert Path(record.output).read_bytes() == single.read_bytes()
        assert record.sha256 == file_sha256(single)
    written = _manifest(out)
    assert written["fingerprint"]["model_sha256"] == file_sha256(model)
    assert written["fingerprint"]["geoseg_version"] == geoseg.__version__


def test_a_corrupt_scene_is_recorded_and_the_others_finish(tmp_path: Path, client: object,
                                                           inputs: tuple[Path, list[Path]]) -> None:
    model, scenes = inputs
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00 this is not a raster")
    out = tmp_path / "maps"
    out.mkdir()
    manifest = predict_many([scenes[0], bad, scenes[2]], out, model, scheduler=client, retries=1)
    by_scene = {Path(r["scene"]).name: r for r in _manifest(out)["scenes"]}
    assert by_scene["broken.tif"]["status"] == "failed"
    assert "broken.tif" in by_scene["broken.tif"]["error"] and "\n" not in by_scene["broken.tif"]["error"]
    assert by_scene["broken.tif"]["input_error"] is True
    assert [by_scene[s.name]["status"] for s in (scenes[0], scenes[2])] == ["done", "done"]
    assert len(manifest.failed) == 1 and not (out / "broken.tif").exists()


def test_existing_outputs_are_not_overwritten(tmp_path: Path, client: object,
                                              inputs: tuple[Path, list[Path]]) -> None:
    model, scenes = inputs
    out = tmp_path / "maps"
    out.mkdir()
    (out / "scene1.tif").write_bytes(b"mine")
    manifest = predict_many(scenes, out, model, scheduler=client, retries=0)
    assert (out / "scene1.tif").read_bytes() == b"mine"
    assert [r.status for r in manifest.scenes] == ["done", "failed", "done"]
    assert "output exists" in manifest.scenes[1].error


def test_resume_redoes_only_the_missing_scene(tmp_path: Path, client: object,
                                              inputs: tuple[Path, list[Path]]) -> None:
    model, scenes = inputs
    out = tmp_path / "maps"
    out.mkdir()
    first = predict_many(scenes, out, model, scheduler=client)
    before = {r.output: (Path(r.output).stat().st_mtime_ns, Path(r.output).read_bytes()) for r in first.scenes}
    lost = Path(first.scenes[1].output)
    lost.unlink()
    second = predict_many(scenes, out, model, scheduler=client, resume=True)
    assert [r.status for r in second.scenes] == ["done"] * 3
    for record in second.scenes:
        mtime, data = before[record.output]
        assert Path(record.output).read_bytes() == data
        if Path(record.output) == lost:
            assert Path(record.output).stat().st_mtime_ns != mtime
        else:
            assert Path(record.output).stat().st_mtime_ns == mtime     # finished work is not redone
    assert [r.seconds for r in second.scenes][::2] == [r.seconds for r in first.scenes][::2]


def test_resume_refuses_other_settings(tmp_path: Path, client: object, inputs: tuple[Path, list[Path]]) -> None:
    model, scenes = inputs
    out = tmp_path / "maps"
    out.mkdir()
    predict_many(scenes[:1], out, model, scheduler=client)
    with pytest.raises(ConfigError, match="predictor.overlap"):
        predict_many(scenes[:1], out, model, scheduler=client, resume=True, overlap=16)
    with pytest.raises(ConfigError, match="resume"):
        predict_many(scenes[:1], out, model, scheduler=client)         # a second run needs resume or overwrite


def test_resume_refuses_a_changed_scene(tmp_path: Path, client: object, inputs: tuple[Path, list[Path]]) -> None:
    model, scenes = inputs
    scene = shutil.copy(scenes[0], tmp_path / "scene.tif")
    out = tmp_path / "maps"
    out.mkdir()
    first = predict_many([scene], out, model, scheduler=client)
    mapped = Path(first.scenes[0].output).stat().st_mtime_ns
    assert first.scenes[0].input == {"size": os.path.getsize(scene), "mtime_ns": os.stat(scene).st_mtime_ns}
    os.utime(scene, ns=(os.stat(scene).st_atime_ns, os.stat(scene).st_mtime_ns + 10**9))   # replaced since
    with pytest.raises(ConfigError, match="scene.tif: the scene changed"):
        predict_many([scene], out, model, scheduler=client, resume=True)
    again = predict_many([scene], out, model, scheduler=client, resume=True, overwrite=True)
    assert again.scenes[0].status == "done" and Path(again.scenes[0].output).stat().st_mtime_ns != mapped
    assert again.scenes[0].input["mtime_ns"] == os.stat(scene).st_mtime_ns


def test_missing_dask_says_which_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                       inputs: tuple[Path, list[Path]]) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(InputError, match=r"pip install 'geoseg\[distributed\]'"):
        predict_many(inputs[1], tmp_path, inputs[0])


def test_remote_scenes_through_vsicurl(tmp_path: Path, client: object, inputs: tuple[Path, list[Path]],
                                       http_folder: tuple[Path, str]) -> None:
    model, scenes = inputs
    folder, url = http_folder
    shutil.copy(scenes[0], folder / "remote0.tif")
    out = tmp_path / "maps"
    out.mkdir()
    manifest = predict_many([f"/vsicurl/{url}/remote0.tif"], out, model, scheduler=client)
    assert manifest.scenes[0].status == "done", manifest.scenes[0].error
    assert manifest.scenes[0].scene == f"/vsicurl/{url}/remote0.tif"
    geoseg.predict(scenes[0], tmp_path / "local.tif", model)
    assert (out / "remote0.tif").read_bytes() == (tmp_path / "local.tif").read_bytes()


class KillOnce(distributed.WorkerPlugin):
    """Kills its worker process the first time a task whose key holds ``marker`` starts executing there
    (flag file: once in all)."""

    name = "geoseg-test-kill-once"

    def __init__(self, flag: str, marker: str = "geoseg-scene") -> None:
        self.flag = flag
        self.marker = marker

    def transition(self, key: object, start: str, finish: str, **kwargs: object) -> None:
        if finish == "executing" and self.marker in str(key) and not os.path.exists(self.flag):
            Path(self.flag).write_text(str(key))
            os._exit(1)


@pytest.mark.slow
def test_a_worker_dying_mid_run_changes_nothing(tmp_path: Path, client: object,
                                                inputs: tuple[Path, list[Path]]) -> None:
    model, scenes = inputs
    reference = tmp_path / "reference"
    reference.mkdir()
    predict_many(scenes, reference, model, scheduler=client)
    out = tmp_path / "maps"
    out.mkdir()
    flag = tmp_path / "killed"
    client.register_plugin(KillOnce(str(flag)))
    try:
        manifest = predict_many(scenes, out, model, scheduler=client, retries=0)
    finally:
        client.unregister_worker_plugin(KillOnce.name)
    assert flag.exists()                                   # a worker did die running a scene
    assert [r.status for r in manifest.scenes] == ["done"] * 3
    for scene in scenes:
        assert (out / f"{scene.stem}.tif").read_bytes() == (reference / f"{scene.stem}.tif").read_bytes()
    assert not list(out.glob(".*tmp-*"))                   # no temporary file left behind


def _cli(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "geoseg", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.mark.slow
def test_cli_glob_with_a_corrupt_scene_exits_2(tmp_path: Path, inputs: tuple[Path, list[Path]]) -> None:
    model, scenes = inputs
    folder = tmp_path / "scenes"
    folder.mkdir()
    for scene in scenes[:2]:
        shutil.copy(scene, folder / scene.name)
    (folder / "broken.tif").write_bytes(b"II*\x00 this is not a raster")
    done = _cli("predict", folder / "*.tif", "-o", tmp_path / "maps", "-m", model, "--local-workers", 2,
                "--progress", "json", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[0]["event"] == "start" and events[0]["unit"] == "scenes" and events[0]["total"] == 3
    assert events[-1]["event"] == "progress" and events[-1]["done"] == 3
    failed = [line for line in done.stderr.splitlines() if line.startswith("geoseg: failed:")]
    assert len(failed) == 1 and "broken.tif" in failed[0]
    assert f"2 of 3 scenes done; manifest: {tmp_path / 'maps' / MANIFEST_NAME}" in done.stderr
    assert sorted(p.name for p in (tmp_path / "maps").glob("*.tif")) == ["scene0.tif", "scene1.tif"]


@pytest.mark.slow
def test_cli_scene_list_then_resume(tmp_path: Path, inputs: tuple[Path, list[Path]]) -> None:
    model, scenes = inputs
    listing = tmp_path / "scenes.txt"
    listing.write_text("# three crops\n" + "\n".join(map(str, scenes)) + "\n\n")
    maps = tmp_path / "maps"
    first = _cli("predict", listing, "-o", maps, "-m", model, "--local-workers", 2, "-q", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    (maps / "scene2.tif").unlink()
    again = _cli("predict", listing, "-o", maps, "-m", model, "--local-workers", 2, cwd=tmp_path)
    assert again.returncode == 2 and "--resume" in again.stderr          # a second run must say resume
    resumed = _cli("predict", listing, "-o", maps, "-m", model, "--local-workers", 2, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert [r["status"] for r in _manifest(maps)["scenes"]] == ["done"] * 3
    other = _cli("predict", listing, "-o", maps, "-m", model, "--resume", "--tile", 32, cwd=tmp_path)
    assert other.returncode == 2 and "predictor.tile" in other.stderr
    from_python = predict_many(scenes, maps, model, resume=True)     # same fingerprint as the CLI's: nothing to redo
    assert [r.status for r in from_python.scenes] == ["done"] * 3
