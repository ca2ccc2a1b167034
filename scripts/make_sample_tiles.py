"""Re-create sample_tiles/ and tests/data/ from ../shared/data (developers only; users get the files).

The Zion crop is the held-out test block of the default model (rows 1024.. of the scene), so the
demo and the shipped-model test run on pixels the model never trained on.
"""
from __future__ import annotations

import sys
from pathlib import Path

import rasterio
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
TEST_ROW = 1024  # keep in sync with the test block of configs/zion_landcover.yaml


def crop(src: Path, dst: Path, window: Window, descriptions: list[str] | None = None) -> None:
    with rasterio.open(src) as ds:
        profile = ds.profile.copy()
        profile.update(width=int(window.width), height=int(window.height), transform=ds.window_transform(window),
                       tiled=True, blockxsize=256, blockysize=256, compress="deflate",
                       predictor=2, interleave="pixel")
        data = ds.read(window=window)
        with rasterio.open(dst, "w", **profile) as out:
            out.write(data)
            for i, name in enumerate(descriptions or ds.descriptions, start=1):
                if name:
                    out.set_band_description(i, name)
            if ds.count == 1:
                try:
                    out.write_colormap(1, ds.colormap(1))
                except ValueError:
                    pass
    print(dst, dst.stat().st_size)


def main() -> int:
    zion = SHARED / "zion_landsat8_nlcd"
    val = Window(0, TEST_ROW, 1128, 1428 - TEST_ROW)
    crop(zion / "landsat8_zion_b2345.tif", ROOT / "sample_tiles" / "zion_landsat8_b2345.tif", val,
         ["blue", "green", "red", "nir"])
    crop(zion / "nlcd8_on_landsat_grid.tif", ROOT / "sample_tiles" / "zion_nlcd8.tif", val, ["class"])
    crop(SHARED / "scenes" / "naip_m_4709963_se_14_1_20200831.tif", ROOT / "sample_tiles" / "naip_2020_rgbn.tif",
         Window(200, 100, 512, 512), ["red", "green", "blue", "nir"])
    crop(SHARED / "scenes" / "rasterio_RGB.byte.tif", ROOT / "tests" / "data" / "landsat7_rgb_nodata_frame.tif",
         Window(0, 0, 791, 718), ["red", "green", "blue"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
