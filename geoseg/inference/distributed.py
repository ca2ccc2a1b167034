"""Many scenes on a Dask cluster: one task per scene, a JSON run manifest, resume.

Each task runs the single-scene engine (:meth:`Predictor.predict`, which writes atomically) on a worker, so
a map made here is the same bytes as one made in-process. Tasks carry paths, never arrays or weights: a
worker process loads the model once (a per-process cache keyed by the model file's sha256 and the
settings) and reads its scene itself. The client keeps ``output_dir/geoseg-run.json`` up to date after
every finished scene, so a killed client loses nothing that was done; ``resume`` redoes only the rest and
refuses to mix runs made with other settings.
"""
from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from geoseg.errors import ConfigError, InputError, InputFileError, ParameterError
from geoseg.inference.config import PREDICTOR_OPTIONS, PredictorConfig
from geoseg.io.cog import DEFAULT_OUTPUT_BLOCK
from geoseg.io.outputs import atomic_output
from geoseg.progress import NullReporter, Reporter

MANIFEST_NAME = "geoseg-run.json"
MANIFEST_VERSION = 1
INSTALL_HINT = "pip install 'geoseg[distributed]'"
#: Predictor.predict options a many-scene run may pass on (outputs are chosen here, not by the caller).
_RUN_OPTIONS = ("bands", "output_block", "check_values", "qml", "stac", "nodata", "repeat_bands")
_RUN_DEFAULTS: dict[str, Any] = {"bands": None, "output_block": DEFAULT_OUTPUT_BLOCK, "check_values": True,
                                 "qml": True, "stac": True, "nodata": None, "repeat_bands": False}


class SceneFailed(Exception):
    """A scene's one-line error as ``SceneFailed(message, input_error)``: only ``args``, so it survives the
    trip from a worker (InputError kinds have keyword-only fields, which Dask's exception pickling drops)."""

    @property
    def message(self) -> str:
        return str(self.args[0])

    @property
    def input_error(self) -> bool:
        return bool(self.args[1])

    def __str__(self) -> str:
        return self.message


@dataclass
class SceneRecord:
    """One scene's line in the manifest."""

    scene: str
    output: str
    status: str = "pending"              # done, failed or pending
    error: str | None = None
    input_error: bool | None = None
    seconds: float | None = None
    sha256: str | None = None


@dataclass
class RunManifest:
    """What a many-scene run did: per scene status and checksum, and the settings that made the outputs."""

    path: Path
    fingerprint: dict[str, Any]
    scenes: list[SceneRecord] = field(default_factory=list)

    @property
    def done(self) -> list[SceneRecord]:
        return [s for s in self.scenes if s.status == "done"]

    @property
    def failed(self) -> list[SceneRecord]:
        return [s for s in self.scenes if s.status == "failed"]

    def to_json(self) -> dict[str, Any]:
        return {"format_version": MANIFEST_VERSION, "fingerprint": self.fingerprint,
                "scenes": [asdict(s) for s in self.scenes]}

    def write(self) -> None:
        """Atomically: a reader (or a resume after a crash) never sees half a manifest."""
        with atomic_output(self.path, overwrite=True) as tmp:
            tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> RunManifest:
        try:
            data = json.loads(path.read_text())
            return cls(path, data["fingerprint"], [SceneRecord(**s) for s in data["scenes"]])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"{path}: not a geoseg run manifest ({err}); remove it or choose another output folder") \
                from None


# ------------------------------------------------------------------------------------------------ client side
def predict_many(scenes: Iterable[str | os.PathLike], output_dir: str | os.PathLike, model: str | os.PathLike | None = None,
                 *, scheduler: Any = None, local_workers: int | None = None, resume: bool = False,
                 overwrite: bool = False, retries: int = 1, reporter: Reporter | None = None,
                 **predictor_options: Any) -> RunManifest:
    """Segment every scene into ``output_dir/<scene stem>.tif`` with one Dask task per scene.

    ``scheduler`` is a scheduler address (``tcp://host:8786``) or a ``distributed.Client``; without it a
    LocalCluster of ``local_workers`` processes (one thread each) runs here. A failing scene is retried
    ``retries`` times, then recorded with its one-line error while the others finish. ``resume`` skips
    scenes the manifest records as done with the same fingerprint and whose output still has its checksum.
    ``reporter`` follows the whole run in scenes (scenes already done count at once); the caller ends it.
    ``predictor_options`` are those of :func:`geoseg.predict` except outputs (probabilities, reporter).
    """
    distributed = require_distributed()
    scenes = [_absolute(os.fspath(s)) for s in scenes]
    out = Path(output_dir)
    if not out.is_dir():
        raise ParameterError("output_dir", out, "is not a folder; create it first")
    if retries < 0:
        raise ParameterError("retries", retries, "must be 0 or more")
    model_path = _model_path(model)
    setup, run_options = _split_options(predictor_options)
    fingerprint = make_fingerprint(model_path, setup, run_options)
    manifest = _start_manifest(out, scenes, fingerprint, resume, overwrite)
    todo = [r for r in manifest.scenes if r.status != "done"]
    reporter = reporter or NullReporter()
    reporter.start(len(manifest.scenes), unit="scenes")
    reporter.advance(len(manifest.scenes) - len(todo))
    if todo:
        with _client(distributed, scheduler, local_workers, len(todo)) as client:
            _run(client, distributed, manifest, todo, model_path, fingerprint["model_sha256"], setup, run_options,
                 overwrite, retries, reporter)
    manifest.write()
    return manifest


def _absolute(scene: str) -> str:
    """Local paths made absolute, so a resume from another folder finds the same scenes; GDAL virtual
    paths and URLs as given."""
    return scene if scene.startswith("/vsi") or "://" in scene else os.path.abspath(scene)


def is_scene_list(argument: str) -> bool:
    """Whether a scene argument names many scenes: a glob pattern or a ``.txt`` list (URLs keep their ``?``)."""
    if argument.endswith(".txt"):
        return True
    return "*" in argument or "[" in argument or ("?" in argument and "://" not in argument)


def scene_list(argument: str) -> list[str]:
    """The scenes a CLI argument names: a ``.txt`` file with one path or URL a line (blank lines and ``#``
    comments skipped; relative paths are relative to the current folder), a glob pattern (sorted, so runs
    are repeatable), or the one scene itself."""
    if argument.endswith(".txt"):
        try:
            lines = Path(argument).read_text().splitlines()
        except OSError as err:
            raise InputFileError(f"{argument}: cannot read the scene list ({err.strerror})") from None
        scenes = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
        if not scenes:
            raise InputFileError(f"{argument}: the scene list names no scene; write one path or URL a line")
        return scenes
    if is_scene_list(argument):
        scenes = sorted(glob.glob(argument))
        if not scenes:
            raise InputFileError(f"{argument}: no file matches this pattern")
        return scenes
    return [argument]


def require_distributed() -> Any:
    """The ``distributed`` module, or a one-line InputError saying which extra to install."""
    try:
        import distributed
    except ImportError:
        raise InputError(f"running on Dask needs dask.distributed, which is not installed; {INSTALL_HINT}") from None
    return distributed


def make_fingerprint(model_path: Path, setup: dict[str, Any], run_options: dict[str, Any]) -> dict[str, Any]:
    """Everything that changes an output's bytes: the model file, the settings and the geoseg version."""
    from geoseg import __version__

    return {"model_sha256": file_sha256(model_path), "predictor": _jsonable(setup),
            "options": _jsonable(run_options), "geoseg_version": __version__}


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def output_path(output_dir: Path, scene: str) -> Path:
    """``<stem>.tif`` in the output folder; works for local paths, /vsis3/ and /vsicurl/ URLs alike."""
    return output_dir / (PurePosixPath(scene.split("?")[0]).stem + ".tif")


def _model_path(model: str | os.PathLike | None) -> Path:
    """Tasks carry a path (the worker loads it once), so a model must be a file, not a loaded bundle."""
    from geoseg.model.loading import DEFAULT_MODEL_PATH

    if model is None:
        return DEFAULT_MODEL_PATH
    if not isinstance(model, (str, os.PathLike)):
        raise ParameterError("model", type(model).__name__, "must be a path for a distributed run (workers load it)")
    path = Path(model)
    if not path.is_file():
        raise ParameterError("model", path, "no such file")
    return path.resolve()


def _split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Predictor settings (checked here, before any worker starts) apart from per-scene options, both with
    their defaults filled in, so the fingerprint of a run is the same from Python and from the CLI."""
    unknown = sorted(set(options) - {"config", *PREDICTOR_OPTIONS, *_RUN_OPTIONS})
    if unknown:
        raise TypeError(f"predict_many got unexpected options {unknown}; "
                        f"use config, {', '.join(PREDICTOR_OPTIONS + _RUN_OPTIONS)}")
    config = options.get("config") or PredictorConfig()
    setup = config.updated(**{k: v for k, v in options.items() if k in PREDICTOR_OPTIONS}).model_dump(mode="json")
    run = {**_RUN_DEFAULTS, **{k: v for k, v in options.items() if k in _RUN_OPTIONS and v is not None}}
    return setup, run


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(options, sort_keys=True, default=str))


def _start_manifest(out: Path, scenes: Sequence[str], fingerprint: dict[str, Any], resume: bool,
                    overwrite: bool) -> RunManifest:
    """A fresh manifest, or on resume the old one checked against this run's fingerprint."""
    path = out / MANIFEST_NAME
    records = [SceneRecord(s, str(output_path(out, s))) for s in scenes]
    names = [r.output for r in records]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})[0]
        raise ParameterError("scenes", twice, "two scenes share this output name; rename one of them")
    if not resume:
        if path.exists() and not overwrite:
            raise ConfigError(f"{path}: a run manifest exists; pass {{resume}} to continue that run or {{overwrite}} "
                              "to start over", parameters=("resume", "overwrite"))
        return RunManifest(path, fingerprint, records)
    if not path.exists():
        return RunManifest(path, fingerprint, records)
    old = RunManifest.read(path)
    _check_same_settings(path, old.fingerprint, fingerprint)
    done = {r.scene: r for r in old.done if _still_there(r)}
    for record in old.done:
        if record.scene not in done and not Path(record.output).exists():
            _remove_stale_sidecars(Path(record.output))
    return RunManifest(path, fingerprint, [done.get(r.scene, r) for r in records])


def _check_same_settings(path: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    """ConfigError naming the first setting that differs: resume never mixes outputs of two settings."""
    flat_old, flat_new = _flatten(old), _flatten(new)
    for key in sorted(set(flat_old) | set(flat_new)):
        if flat_old.get(key) != flat_new.get(key):
            raise ConfigError(f"{path}: the run was made with {key}={flat_old.get(key)!r}, this one has "
                              f"{key}={flat_new.get(key)!r}; use the same settings to resume, or another output folder")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[prefix + k] = v
    return flat


def _still_there(record: SceneRecord) -> bool:
    path = Path(record.output)
    return path.is_file() and record.sha256 == file_sha256(path)


def _remove_stale_sidecars(class_map: Path) -> None:
    """The style, STAC Item and aux file this run wrote beside a map the user has since deleted: they
    describe a map that is gone, and would otherwise block redoing it."""
    from geoseg.io.qml import qml_path
    from geoseg.io.stac import stac_path

    for path in (qml_path(class_map), stac_path(class_map), Path(str(class_map) + ".aux.xml")):
        if path.is_file():
            path.unlink()


class _client:
    """A Client on ``scheduler`` (an address or a Client), or on a LocalCluster that lives for this run."""

    def __init__(self, distributed: Any, scheduler: Any, local_workers: int | None, tasks: int) -> None:
        self.distributed, self.scheduler = distributed, scheduler
        self.workers = local_workers or max(1, min(tasks, os.cpu_count() or 1))
        self.owned: list[Any] = []

    def __enter__(self) -> Any:
        if isinstance(self.scheduler, self.distributed.Client):
            return self.scheduler
        if self.scheduler is not None:
            client = self.distributed.Client(self.scheduler)
        else:
            # ":0": the scheduler's HTTP server always starts; a free port never clashes with another cluster
            cluster = self.distributed.LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                                    dashboard_address=":0", silence_logs=logging.CRITICAL)
            self.owned.append(cluster)
            client = self.distributed.Client(cluster)
        self.owned.insert(0, client)
        return client

    def __exit__(self, *exc: object) -> None:
        for thing in self.owned:
            thing.close()


def _run(client: Any, distributed: Any, manifest: RunManifest, todo: list[SceneRecord], model_path: Path,
         model_sha: str, setup: dict[str, Any], run_options: dict[str, Any], overwrite: bool, retries: int,
         reporter: Reporter) -> None:
    """Submit one task per scene; record each as it finishes and rewrite the manifest each time."""
    futures = {client.submit(predict_scene, r.scene, r.output, str(model_path), model_sha, setup, run_options,
                             overwrite, key=f"geoseg-scene-{i}-{hashlib.sha1(r.output.encode()).hexdigest()[:12]}",
                             retries=retries, pure=False): r
               for i, r in enumerate(todo)}
    for future in distributed.as_completed(futures):
        record = futures[future]
        if future.status == "finished":
            result = future.result()
            record.status, record.error, record.input_error = "done", None, None
            record.seconds, record.sha256 = result["seconds"], result["sha256"]
        else:
            err = future.exception()
            record.status, record.sha256 = "failed", None
            record.error = _one_line(str(err))
            record.input_error = bool(getattr(err, "input_error", False))
        manifest.write()
        reporter.advance(1)


def _one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"


# ------------------------------------------------------------------------------------------------ worker side
#: Per worker process: loaded predictors by (model sha256, settings). Weights never travel in a task.
_PREDICTORS: dict[tuple[str, str], Any] = {}


def predict_scene(scene: str, output: str, model_path: str, model_sha: str, setup: dict[str, Any],
                  run_options: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    """One task: segment ``scene`` into ``output`` with this process's cached predictor."""
    started = time.perf_counter()
    failure: SceneFailed | None = None
    try:
        predictor = _predictor(model_path, model_sha, setup)
        predictor.predict(scene, output, overwrite=overwrite, **run_options)
    except InputError as err:
        failure = SceneFailed(_one_line(str(err)), True)
    except Exception as err:
        failure = SceneFailed(_one_line(f"{scene}: {_describe(err)}"), _is_data_error(err))
    if failure is not None:   # raised outside the handler: no chained InputError for Dask to fail to pickle
        raise failure
    return {"seconds": round(time.perf_counter() - started, 3), "sha256": file_sha256(output)}


def _predictor(model_path: str, model_sha: str, setup: dict[str, Any]) -> Any:
    from geoseg.inference.predictor import Predictor

    key = (model_sha, json.dumps(setup, sort_keys=True, default=str))
    if key not in _PREDICTORS:
        _PREDICTORS[key] = Predictor(model_path, **setup)
    return _PREDICTORS[key]


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def _is_data_error(err: BaseException) -> bool:
    """Damaged raster data is the user's to fix (as for the single-scene CLI), not a bug."""
    from rasterio.errors import RasterioError

    return isinstance(err, RasterioError)
