"""One huge scene on a Dask cluster: bands of whole tile rows on the workers, one writer assembles the COG.

The scene's :class:`~geoseg.inference.tiling.TileGrid` is cut into :func:`row_partitions`; a worker computes
one with :meth:`Predictor.predict_part` (its halo tile rows again, the same blending and summation order)
into a tiled GeoTIFF in a hidden work folder beside the target, ``.<name>.tif.geoseg-parts/``. The client
records each finished part (and its checksum) in ``parts.json`` there, then copies the parts in order into
one :class:`~geoseg.io.cog.ClassMapWriter` (GDAL's COG driver can only copy a finished file, so no COG is
ever written concurrently) and adds the sidecars :meth:`Predictor.predict` adds. The map is byte-identical
to the single-process run. The work folder goes when the map is in place; after a failure or a killed
client it keeps the finished parts, and ``resume`` computes only the others (never with other settings).
"""
from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from geoseg.errors import ConfigError, InputFileError, ParameterError
from geoseg.inference.config import PredictorConfig
from geoseg.inference.distributed import (cached_predictor, cancel_unfinished, check_same_settings, file_sha256,
                                          guarded, input_stamp, make_fingerprint, model_file, require_distributed,
                                          run_client, split_options, write_json)
from geoseg.inference.predictor import check_outputs, class_totals, fit_or_refuse, output_writers
from geoseg.inference.tiling import RowPartition, TileGrid, row_partitions
from geoseg.io.cog import ClassMapWriter, check_output_block
from geoseg.io.outputs import atomic_output
from geoseg.io.rasters import gdal_env, open_raster, streaming_cache_mb
from geoseg.io.sidecars import Sidecars
from geoseg.model.loading import load_model
from geoseg.model.producer import model_producer
from geoseg.progress import NullReporter, Reporter
from geoseg.summaries import PartSummary, PredictionSummary

PARTS_MANIFEST = "parts.json"
PARTS_VERSION = 1
#: Partitions when the caller names none: enough to keep a few dozen workers busy on a large mosaic
#: (a scene with fewer tile rows gets one partition per row).
DEFAULT_PARTITIONS = 16


def work_folder(output: str | os.PathLike) -> Path:
    """The hidden folder beside ``output`` that holds its parts while a run is unfinished."""
    output = Path(output)
    return output.with_name(f".{output.name}.geoseg-parts")


@dataclass
class PartRecord:
    """One partition's line in ``parts.json``."""

    part: int
    y0: int
    y1: int
    status: str = "pending"              # done, failed or pending
    error: str | None = None
    input_error: bool | None = None
    seconds: float | None = None
    tiles_total: int | None = None
    tiles_run: int | None = None
    device: str | None = None
    precision: str | None = None
    sha256: str | None = None
    probabilities_sha256: str | None = None


@dataclass
class PartsManifest:
    """What a partitioned run has finished, and the settings (fingerprint) its parts were made with."""

    folder: Path
    fingerprint: dict[str, Any]
    parts: list[PartRecord] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.folder / PARTS_MANIFEST

    def class_part(self, record: PartRecord) -> Path:
        return self.folder / f"part-{record.part:04d}.tif"

    def probabilities_part(self, record: PartRecord) -> Path:
        return self.folder / f"part-{record.part:04d}.probabilities.tif"

    def write(self) -> None:
        write_json(self.path, {"format_version": PARTS_VERSION, "fingerprint": self.fingerprint,
                               "parts": [asdict(p) for p in self.parts]})

    @classmethod
    def read(cls, folder: Path) -> PartsManifest:
        path = folder / PARTS_MANIFEST
        try:
            data = json.loads(path.read_text())
            return cls(folder, data["fingerprint"], [PartRecord(**p) for p in data["parts"]])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"{path}: not a geoseg parts manifest ({err}); remove {folder} to start over") \
                from None

    def still_there(self, record: PartRecord) -> bool:
        """A done part whose files still have the checksums recorded (a part damaged since is redone)."""
        files = [(self.class_part(record), record.sha256)]
        if record.probabilities_sha256 is not None:
            files.append((self.probabilities_part(record), record.probabilities_sha256))
        return all(path.is_file() and file_sha256(path) == sha for path, sha in files)

    def remove(self) -> None:
        """Remove the files of this run (parts, their temporaries, the manifest), then the folder if empty:
        nothing else is touched, so a file a user put there survives, and so does the folder."""
        for path in self.folder.iterdir():
            if path.is_file() and (path.name == PARTS_MANIFEST or path.name.startswith(("part-", ".part-"))):
                path.unlink()
        with contextlib.suppress(OSError):
            self.folder.rmdir()


# ------------------------------------------------------------------------------------------------ client side
def predict_partitioned(scene: str | os.PathLike, output: str | os.PathLike, model: str | os.PathLike | None = None,
                        *, partitions: int = DEFAULT_PARTITIONS, probabilities: str | os.PathLike | None = None,
                        scheduler: Any = None, local_workers: int | None = None,
                        resources: dict[str, float] | None = None, resume: bool = False,
                        overwrite: bool = False, retries: int = 1, reporter: Reporter | None = None,
                        **predictor_options: Any) -> PredictionSummary:
    """Segment one scene into the class map ``output`` (and ``probabilities``) on a Dask cluster.

    The scene's tile rows are cut into ``partitions`` bands (at most one per tile row), one task each; the
    client assembles the COG, byte-identical to :func:`geoseg.predict`'s. ``scheduler``, ``local_workers``,
    ``resources``, ``retries`` and the options are those of :func:`~geoseg.inference.distributed.predict_many`.
    ``resume`` reuses the parts a failed or killed run finished with the same settings and inputs.
    ``reporter`` follows the partitions; the caller ends it.
    """
    distributed = require_distributed()
    scene = _scene_path(scene)
    output = Path(output)
    if partitions < 1:
        raise ParameterError("partitions", partitions, "must be 1 or more")
    if retries < 0:
        raise ParameterError("retries", retries, "must be 0 or more")
    model_path = model_file(model)
    setup, run_options = split_options(predictor_options, "predict_partitioned")
    check_output_block(run_options["output_block"])
    sidecars = Sidecars(qml=run_options["qml"], stac=run_options["stac"])
    check_outputs(scene, output, probabilities, sidecars, overwrite)
    reporter = reporter or NullReporter()
    bundle = load_model(model_path)
    config = PredictorConfig(**setup).for_model(bundle)
    with gdal_env(), open_raster(scene) as dataset:
        fit_or_refuse(scene, dataset, bundle.meta, run_options["bands"], run_options["check_values"], reporter,
                      fill=run_options["nodata"], repeat_bands=run_options["repeat_bands"])
        grid = TileGrid(dataset.height, dataset.width, config.tile, config.overlap, config.blend)  # type: ignore[arg-type]
    parts = row_partitions(grid, partitions)
    fingerprint = {**make_fingerprint(model_path, setup, run_options), "scene": scene,
                   "input": input_stamp(scene), "partitions": len(parts), "probabilities": probabilities is not None}
    manifest = _start(work_folder(output), parts, fingerprint, resume, overwrite)
    todo = [r for r in manifest.parts if r.status != "done"]
    reporter.start(len(parts), unit="partitions")
    reporter.advance(len(parts) - len(todo))
    started = time.perf_counter()
    try:
        if todo:
            with run_client(distributed, scheduler, local_workers, len(todo), resources) as client:
                _compute(client, distributed, manifest, todo, scene, model_path, setup, run_options, retries,
                         resources, reporter)
    except BaseException:
        _keep_if_useful(manifest)
        raise
    failed = [r for r in manifest.parts if r.status == "failed"]
    if failed:
        _keep_if_useful(manifest)
        kept = (f"the finished ones are kept in {manifest.folder}: fix the cause and run again with {{resume}}"
                if manifest.folder.exists() else "fix the cause and run again")
        message = f"{len(failed)} of {len(parts)} partitions failed, the first: {failed[0].error}; {kept}"
        if all(r.input_error for r in failed):
            raise InputFileError(message, parameters=("resume",))
        raise RuntimeError(message.replace("{resume}", "resume"))
    summary = assemble(manifest, scene, output, probabilities, bundle, run_options, overwrite)
    manifest.remove()
    elapsed = time.perf_counter() - started
    return summary.model_copy(update={"elapsed_s": round(elapsed, 3),
                                      "megapixels_per_s": round(grid.width * grid.height / 1e6 / elapsed, 3)})


def _keep_if_useful(manifest: PartsManifest) -> None:
    """After a failure the work folder stays only if it holds a finished part for ``resume``."""
    if not any(r.status == "done" for r in manifest.parts):
        manifest.remove()


def _scene_path(scene: str | os.PathLike) -> str:
    """Local paths absolute (a worker may run elsewhere), GDAL virtual paths and URLs as given."""
    scene = os.fspath(scene)
    return scene if scene.startswith("/vsi") or "://" in scene else os.path.abspath(scene)


def _start(folder: Path, parts: list[RowPartition], fingerprint: dict[str, Any], resume: bool,
           overwrite: bool) -> PartsManifest:
    """A fresh work folder, or on resume the old one's finished parts, checked against this run."""
    fresh = PartsManifest(folder, fingerprint, [PartRecord(p.index, p.y0, p.y1) for p in parts])
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: a file has the name of the run's work folder; move it away")
    if folder.is_dir() and (folder / PARTS_MANIFEST).exists():
        if resume:
            old = PartsManifest.read(folder)
            check_same_settings(old.path, old.fingerprint, fingerprint)
            kept = {r.part: r for r in old.parts if r.status == "done" and old.still_there(r)}
            fresh.parts = [kept.get(r.part, r) for r in fresh.parts]
        elif overwrite:
            PartsManifest.read(folder).remove()
        else:
            raise ConfigError(f"{folder}: an unfinished run to this output left its parts here; pass {{resume}} to "
                              "finish it or {overwrite} to start over", parameters=("resume", "overwrite"))
    folder.mkdir(exist_ok=True)
    fresh.write()
    return fresh


def _compute(client: Any, distributed: Any, manifest: PartsManifest, todo: list[PartRecord], scene: str,
             model_path: Path, setup: dict[str, Any], run_options: dict[str, Any], retries: int,
             resources: dict[str, float] | None, reporter: Reporter) -> None:
    """One task per missing part; each recorded (and the manifest rewritten) as it finishes."""
    model_sha = manifest.fingerprint["model_sha256"]
    count = manifest.fingerprint["partitions"]
    with_probabilities = manifest.fingerprint["probabilities"]
    futures = {}
    run = uuid.uuid4().hex[:8]               # keys of this run only: a task left by an interrupted one is not it
    for record in todo:
        probabilities = str(manifest.probabilities_part(record)) if with_probabilities else None
        future = client.submit(predict_part, scene, str(manifest.class_part(record)), probabilities, record.part,
                               count, str(model_path), model_sha, setup, run_options, retries=retries, pure=False,
                               resources=resources,
                               key=f"geoseg-part-{record.part}-of-{count}-{run}")
        futures[future] = record
    with cancel_unfinished(client, futures):
        _record(distributed, futures, manifest, reporter)


def _record(distributed: Any, futures: dict[Any, PartRecord], manifest: PartsManifest, reporter: Reporter) -> None:
    for future in distributed.as_completed(futures):
        record = futures[future]
        if future.status == "finished":
            result: dict[str, Any] = future.result()
            summary = PartSummary(**result["summary"])
            record.status, record.error, record.input_error = "done", None, None
            record.seconds, record.sha256 = result["seconds"], result["sha256"]
            record.probabilities_sha256 = result["probabilities_sha256"]
            record.tiles_total, record.tiles_run = summary.tiles_total, summary.tiles_run
            record.device, record.precision = result["device"], result["precision"]
        else:
            err = future.exception()
            record.status, record.error = "failed", str(err)
            record.input_error = bool(getattr(err, "input_error", False))
        manifest.write()
        reporter.advance(1)


def assemble(manifest: PartsManifest, scene: str, output: Path, probabilities: str | os.PathLike | None,
             bundle: Any, run_options: dict[str, Any], overwrite: bool) -> PredictionSummary:
    """The finished parts, top to bottom, into the class-map COG (and probabilities) with its sidecars.

    One writer reads the parts in bands of its block height (memory: a band of the scene's width), so
    the map, its overviews, attribute table and sidecars are those :meth:`Predictor.predict` writes.
    """
    meta = bundle.meta
    output_block = run_options["output_block"]
    with gdal_env(), open_raster(scene) as dataset:
        profile = {"width": dataset.width, "height": dataset.height, "crs": dataset.crs,
                   "transform": dataset.transform}
        # tile 0: the writer reads parts, not the scene
        cache_mb = streaming_cache_mb(dataset, 0, output_block, 1 + (meta.num_classes if probabilities else 0))
        with contextlib.ExitStack() as stack:
            stack.enter_context(gdal_env(cache_mb))
            class_tmp = stack.enter_context(atomic_output(output, overwrite, inputs=[scene]))
            prob_tmp = (stack.enter_context(atomic_output(probabilities, overwrite, inputs=[scene]))
                        if probabilities is not None else None)
            writers = output_writers(meta.scheme, class_tmp, prob_tmp, profile, output_block)
            sources = [manifest.class_part, manifest.probabilities_part]
            try:
                for record in manifest.parts:
                    if not manifest.still_there(record):
                        raise ConfigError(f"{manifest.class_part(record)}: the part changed after it was computed "
                                          "(another run writing to the same output?); run again with {overwrite}",
                                          parameters=("overwrite",))
                for writer, source in zip(writers, sources):
                    for record in manifest.parts:
                        _copy_part(source(record), writer, record.y0)
                    writer.finish()
            except BaseException:
                for writer in writers:
                    writer.abort()
                raise
        totals = class_totals(writers[0].counts, meta.scheme.names(), dataset)
    Sidecars(qml=run_options["qml"], stac=run_options["stac"]).write(
        output, scene, model_producer(bundle), probabilities=probabilities, overwrite=overwrite)
    tiles_run = sum(r.tiles_run or 0 for r in manifest.parts)
    grid_tiles = sum(r.tiles_total or 0 for r in manifest.parts)
    first = manifest.parts[0]
    return PredictionSummary(
        output=str(output), probabilities=str(probabilities) if probabilities else None, width=profile["width"],
        height=profile["height"], tiles_total=grid_tiles, tiles_run=tiles_run, tiles_skipped=grid_tiles - tiles_run,
        elapsed_s=0.0, megapixels_per_s=0.0, device=first.device or "unknown", precision=first.precision or "unknown",
        **totals)


def _copy_part(path: Path, writer: ClassMapWriter, y0: int) -> None:
    import rasterio

    with rasterio.open(path) as part:
        for top in range(0, part.height, writer.block):
            rows = min(writer.block, part.height - top)
            data: np.ndarray = part.read(window=Window(0, top, part.width, rows))
            writer.write(data, y0 + top, 0)


# ------------------------------------------------------------------------------------------------ worker side
def predict_part(scene: str, class_part: str, probabilities_part: str | None, part: int, of: int, model_path: str,
                 model_sha: str, setup: dict[str, Any], run_options: dict[str, Any]) -> dict[str, Any]:
    """One task: partition ``part`` of ``of`` into its part files, with this process's cached predictor.

    A part left by a worker that died after writing it is replaced (``overwrite``): parts are the run's
    own files, and the client only trusts the checksums it recorded.
    """
    started = time.perf_counter()

    def work() -> dict[str, Any]:
        predictor = cached_predictor(model_path, model_sha, setup)
        summary = predictor.predict_part(
            scene, class_part, part, of, probabilities=probabilities_part, bands=run_options["bands"],
            output_block=run_options["output_block"], check_values=run_options["check_values"],
            nodata=run_options["nodata"], repeat_bands=run_options["repeat_bands"], overwrite=True)
        return {"summary": summary.model_dump(), "seconds": round(time.perf_counter() - started, 3),
                "sha256": file_sha256(class_part), "device": str(predictor.plan.device),
                "precision": predictor.backend.precision,
                "probabilities_sha256": file_sha256(probabilities_part) if probabilities_part else None}

    return guarded(scene, work)

