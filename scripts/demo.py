"""`make demo`: the main job on a shipped sample tile with the embedded default model.

Predicts a land-cover map of the Zion Landsat 8 sample (the default model's held-out validation block),
vectorizes it, writes a preview PNG, scores it against the NLCD labels shipped beside the sample, and
prints where everything is. Re-running replaces the demo outputs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from geoseg import evaluate, predict, vectorize
from geoseg.io.preview import write_preview
from geoseg.progress import make_reporter

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT / "sample_tiles" / "zion_landsat8_b2345.tif"
LABELS = ROOT / "sample_tiles" / "zion_nlcd8.tif"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "demo_out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    classes, polygons, preview = (args.out / n for n in ("landcover.tif", "landcover.gpkg", "preview.png"))
    summary = predict(SCENE, classes, overwrite=True, reporter=make_reporter("rich", "predict"))
    vector = vectorize(classes, polygons, min_area=2 * 900, overwrite=True, reporter=make_reporter("rich", "vectorize"))
    write_preview(SCENE, classes, preview, overwrite=True,
                  title="Zion National Park, Landsat 8, 2015-08-18: land cover by geoseg's default model")
    scores = evaluate(None, SCENE, LABELS, args.out / "report", overwrite=True)
    print(f"\nscene        {SCENE.relative_to(ROOT)} ({summary.width}x{summary.height} px)")
    print(f"class map    {classes}  ({summary.megapixels_per_s:.2f} MP/s on {summary.device} {summary.precision})")
    print(f"             with {classes.name}.aux.xml (class names, attribute table), {classes.stem}.qml (QGIS style), "
          f"{classes.stem}.stac.json (STAC Item)")
    print(f"polygons     {polygons}  ({vector.n_polygons} polygons, regions under 2 pixels merged)")
    print(f"preview      {preview}")
    print(f"evaluation   {args.out / 'report' / 'report.md'}  (vs NLCD 2011: overall accuracy "
          f"{scores.scores.overall_accuracy:.3f}, mean IoU {scores.scores.mean_iou:.3f})")
    print("area per class (km²): " + ", ".join(f"{k} {v / 1e6:.1f}" for k, v in summary.area_m2_per_class.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
