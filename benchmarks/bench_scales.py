"""Map agreement between DN, reflectance and 8-bit versions of one scene, per model (issue 18, part 4).

    python benchmarks/bench_scales.py MODEL [MODEL ...] [--scene S --labels L] [--work DIR]

The scene (default: the full Zion scene in ../shared, else the shipped test block) is written three ways:
as is (Landsat DN), as surface reflectance (DN * 2.75e-5 - 0.2, float32, the Collection 2 scaling) and as
8 bits (per-band 2-98 % percentile stretch to 1-255, 0 for nodata, as quick-look products are made). Each
model maps all three through the Predictor (the value check off, so a fixed-normalisation model is run on
scales it would refuse); the table gives the share of pixels where two versions' maps agree, and each
map's overall accuracy and mean IoU against the labels.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geoseg.evaluation.labels import LabelSource, ids_to_indices  # noqa: E402
from geoseg.evaluation.metrics import IGNORE_INDEX, ConfusionMatrix  # noqa: E402
from geoseg.inference.predictor import Predictor  # noqa: E402

FULL_SCENE = ROOT.parent / "shared" / "data" / "zion_landsat8_nlcd" / "landsat8_zion_b2345.tif"
FULL_LABELS = FULL_SCENE.with_name("nlcd8_on_landsat_grid.tif")
VERSIONS = ("DN", "reflectance", "8-bit")


def write_versions(scene: Path, work: Path) -> dict[str, Path]:
    """The scene as DN (itself), reflectance and an 8-bit stretch."""
    with rasterio.open(scene) as src:
        data = src.read().astype(np.float64)
        valid = src.dataset_mask() > 0
        profile = {**src.profile, "compress": "deflate"}
        descriptions = src.descriptions
    reflectance = (data * 2.75e-5 - 0.2).astype(np.float32)
    reflectance[:, ~valid] = np.nan
    stretched = np.zeros(data.shape, np.uint8)
    for band, values in enumerate(data):
        low, high = np.percentile(values[valid], [2, 98])
        stretched[band] = np.clip(np.rint(1 + 254 * (values - low) / (high - low)), 1, 255)
    stretched[:, ~valid] = 0
    out = {"DN": scene}
    for name, array, extra in (("reflectance", reflectance, {"dtype": "float32", "nodata": float("nan")}),
                               ("8-bit", stretched, {"dtype": "uint8", "nodata": 0, "photometric": "MINISBLACK"})):
        path = work / f"{name}.tif"
        with rasterio.open(path, "w", **{**profile, **extra}) as dst:
            dst.write(array)
            dst.descriptions = descriptions
        out[name] = path
    return out


def measure(model: Path, versions: dict[str, Path], labels: Path, work: Path) -> str:
    predictor = Predictor(model, device="cpu")
    scheme = predictor.meta.scheme
    with rasterio.open(versions["DN"]) as ds:
        reference = LabelSource(labels, scheme).read(ds.crs, ds.transform, ds.height, ds.width)
    maps, scores = {}, {}
    for name, scene in versions.items():
        out = work / f"{model.stem}_{name}.tif"
        predictor.predict(scene, out, check_values=False, overwrite=True, qml=False, stac=False)
        with rasterio.open(out) as ds:
            maps[name] = ds.read(1)
        matrix = ConfusionMatrix(len(scheme.classes))
        predicted = ids_to_indices(maps[name], scheme)
        matrix.update(reference, predicted, predicted != IGNORE_INDEX)
        scores[name] = matrix.scores([c.name for c in scheme.classes])
    agree = {(a, b): float(np.mean(maps[a] == maps[b])) for a, b in
             (("DN", "reflectance"), ("DN", "8-bit"), ("reflectance", "8-bit"))}
    cells = [f"{agree[pair]:.3f}" for pair in agree]
    cells += [f"{scores[v].overall_accuracy:.3f} / {scores[v].mean_iou:.3f}" for v in VERSIONS]
    return f"| {model.name} | " + " | ".join(cells) + " |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--scene", type=Path, default=FULL_SCENE if FULL_SCENE.exists()
                        else ROOT / "sample_tiles" / "zion_landsat8_b2345.tif")
    parser.add_argument("--labels", type=Path, default=FULL_LABELS if FULL_LABELS.exists()
                        else ROOT / "sample_tiles" / "zion_nlcd8.tif")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        versions = write_versions(args.scene, work)
        lines = [f"Scene: {args.scene.name}; labels: {args.labels.name}.", "",
                 "| model | agree DN/refl | agree DN/8-bit | agree refl/8-bit | OA / mIoU DN | OA / mIoU refl | "
                 "OA / mIoU 8-bit |", "|---|---|---|---|---|---|---|"]
        lines += [measure(model, versions, args.labels, work) for model in args.models]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
