"""Objects over a whole scene: an :class:`~geoseg.model.instances.InstanceDetector` run on the tile grid,
with the objects that two tiles see merged into one.

The engine reads tiles exactly as the semantic predictor does (:func:`~geoseg.inference.source.read_tiles`
on a reader thread: the bundle's bands, nodata and fill rules, normalisation, padding; all-nodata tiles
are never run) and hands each tile's objects to :class:`ObjectMerger`, which turns them into scene objects:

- A tile's object is clipped to the tile's real pixels and to valid data, and marked *cut* when it touches
  a side of the tile that is not the scene's border (the tile may see only part of it).
- Objects of two tiles are compared only inside the window both tiles see (the overlap): same class and
  a mask IoU of at least :data:`MATCH_IOU` there, or one containing :data:`MATCH_CONTAINMENT` of the other
  there. Matches are one-to-one per pair of tiles (greedy by IoU) and joined by union-find, so an object
  seen by four tiles at a corner becomes one group.
- A group with a member that no tile edge cuts keeps that member (the tile that saw the object whole; the
  highest score first): pieces cut at tile edges defer to it. A group of cut pieces only (an object larger
  than the overlap) becomes the union of its pieces.
- Each result is reduced to its largest 4-connected part, so it is exactly one polygon (stray pixels of a
  mask would otherwise become slivers far from the object).

Objects are final once no later tile (grid rows are read top to bottom) can see any of their members:
they leave the merger after each row of tiles, so memory holds only the objects on open seams (one row of
tiles across the scene), never the scene's objects. When every object is smaller than the overlap, some
tile sees each one whole and the result does not depend on the tile size, the overlap or the batch size.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from geoseg.inference.source import tile_batches
from geoseg.inference.tiling import Tile, TileGrid
from geoseg.model.instances import InstanceDetector, TileInstances
from geoseg.model.meta import BundleMeta

#: Two tiles' objects are one object when their masks' IoU inside the window both tiles see reaches this...
MATCH_IOU = 0.5
#: ...or when this share of the smaller of the two (inside that window) lies in the other.
MATCH_CONTAINMENT = 0.8
_FOUR = ndimage.generate_binary_structure(2, 1)


@dataclass
class SceneObject:
    """One object in scene pixels: ``mask`` (h, w) bool whose top-left pixel is scene pixel (``y``, ``x``)."""

    y: int
    x: int
    mask: np.ndarray
    score: float
    class_id: int

    @property
    def bounds(self) -> tuple[int, int, int, int]:
        """(y0, x0, y1, x1), end exclusive."""
        return self.y, self.x, self.y + self.mask.shape[0], self.x + self.mask.shape[1]

    @property
    def pixels(self) -> int:
        return int(self.mask.sum())


@dataclass
class _Piece:
    """An object as one tile saw it."""

    obj: SceneObject
    tile: Tile
    cut: bool
    key: int
    parent: int = field(default=-1)


def tile_objects(tile: Tile, found: TileInstances, valid: np.ndarray, grid: TileGrid, score_threshold: float
                 ) -> list[tuple[SceneObject, bool]]:
    """A tile's objects in scene pixels (clipped to the tile's valid pixels), each with its *cut* flag."""
    out = []
    h, w = tile.height, tile.width
    inner = (tile.y > 0, tile.y + h < grid.height, tile.x > 0, tile.x + w < grid.width)
    for mask, score, class_id in zip(found.masks, found.scores, found.class_ids):
        if score < score_threshold:
            continue
        mask = mask[:h, :w] & valid
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if not len(rows):
            continue
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        cut = (inner[0] and r0 == 0) or (inner[1] and r1 == h) or (inner[2] and c0 == 0) or (inner[3] and c1 == w)
        out.append((SceneObject(tile.y + int(r0), tile.x + int(c0), mask[r0:r1, c0:c1].copy(), float(score),
                                int(class_id)), bool(cut)))
    return out


def _window(tile: Tile) -> tuple[int, int, int, int]:
    return tile.y, tile.x, tile.y + tile.height, tile.x + tile.width


def _intersection(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
    y0, x0, y1, x1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    return (y0, x0, y1, x1) if y0 < y1 and x0 < x1 else None


def _crop(obj: SceneObject, box: tuple[int, int, int, int]) -> np.ndarray:
    """``obj``'s mask over ``box`` (scene pixels), False outside the object's own bounds."""
    out = np.zeros((box[2] - box[0], box[3] - box[1]), bool)
    inside = _intersection(obj.bounds, box)
    if inside is not None:
        out[inside[0] - box[0]:inside[2] - box[0], inside[1] - box[1]:inside[3] - box[1]] = \
            obj.mask[inside[0] - obj.y:inside[2] - obj.y, inside[1] - obj.x:inside[3] - obj.x]
    return out


def _area_in(obj: SceneObject, box: tuple[int, int, int, int]) -> int:
    """Pixels of ``obj`` inside ``box``."""
    inside = _intersection(obj.bounds, box)
    if inside is None:
        return 0
    return int(obj.mask[inside[0] - obj.y:inside[2] - obj.y, inside[1] - obj.x:inside[3] - obj.x].sum())


def _overlap_scores(a: SceneObject, b: SceneObject, shared: tuple[int, int, int, int]) -> tuple[float, float]:
    """IoU and containment (intersection over the smaller) of two objects inside ``shared``."""
    both = _intersection(a.bounds, b.bounds)
    box = _intersection(both, shared) if both is not None else None
    if box is None:
        return 0.0, 0.0
    inter = int((_crop(a, box) & _crop(b, box)).sum())
    if not inter:
        return 0.0, 0.0
    area_a, area_b = _area_in(a, shared), _area_in(b, shared)
    return inter / (area_a + area_b - inter), inter / min(area_a, area_b)


class ObjectMerger:
    """Tile objects in, scene objects out: see the module docstring for the rules.

    Feed tiles in grid order with :meth:`add`; each call returns the objects that became final (sorted by
    position), and :meth:`finish` returns the rest.
    """

    def __init__(self, grid: TileGrid, score_threshold: float = 0.0):
        self.grid = grid
        self.score_threshold = score_threshold
        self.pieces: dict[int, _Piece] = {}
        self.by_tile: dict[int, list[int]] = {}
        self.next_key = 0
        self.peak_pending = 0

    def add(self, tile: Tile, found: TileInstances | None, valid: np.ndarray) -> list[SceneObject]:
        """Merge ``tile``'s objects (None for a tile that was not run); the objects now final."""
        if found is not None:
            new = []
            for obj, cut in tile_objects(tile, found, valid, self.grid, self.score_threshold):
                piece = _Piece(obj, tile, cut, self.next_key)
                piece.parent = piece.key
                self.pieces[piece.key] = piece
                new.append(piece)
                self.next_key += 1
            self._match(tile, new)
            if new:
                self.by_tile[tile.index] = [p.key for p in new]
            self.peak_pending = max(self.peak_pending, len(self.pieces))
        if tile.col == len(self.grid.xs) - 1:
            return self._release(self.grid.row_end(tile.row))
        return []

    def finish(self) -> list[SceneObject]:
        return self._release(self.grid.height)

    # ------------------------------------------------------------------------------------- matching
    def _match(self, tile: Tile, new: list[_Piece]) -> None:
        window = _window(tile)
        for index, keys in self.by_tile.items():
            earlier = self.pieces[keys[0]].tile
            shared = _intersection(window, _window(earlier))
            if shared is None:
                continue
            pairs = []
            for p in new:
                if _intersection(p.obj.bounds, shared) is None:
                    continue
                for key in keys:
                    q = self.pieces[key]
                    if q.obj.class_id != p.obj.class_id or _intersection(q.obj.bounds, shared) is None:
                        continue
                    iou, contained = _overlap_scores(p.obj, q.obj, shared)
                    if iou >= MATCH_IOU or contained >= MATCH_CONTAINMENT:
                        pairs.append((-iou, -contained, p.key, q.key))
            used: set[int] = set()
            for _, _, a, b in sorted(pairs):
                if a not in used and b not in used:
                    used.update((a, b))
                    self._union(a, b)

    def _root(self, key: int) -> int:
        while self.pieces[key].parent != key:
            self.pieces[key].parent = self.pieces[self.pieces[key].parent].parent
            key = self.pieces[key].parent
        return key

    def _union(self, a: int, b: int) -> None:
        ra, rb = self._root(a), self._root(b)
        if ra != rb:
            self.pieces[max(ra, rb)].parent = min(ra, rb)

    # -------------------------------------------------------------------------------------- release
    def _release(self, limit: int) -> list[SceneObject]:
        """Resolve and drop the groups whose members all end above scene row ``limit``."""
        groups: dict[int, list[_Piece]] = {}
        for key in list(self.pieces):
            groups.setdefault(self._root(key), []).append(self.pieces[key])
        done = []
        for members in groups.values():
            if max(p.obj.bounds[2] for p in members) > limit:
                continue
            obj = resolve(members)
            if obj is not None:
                done.append(obj)
            for p in members:
                del self.pieces[p.key]
                keys = self.by_tile.get(p.tile.index)
                if keys is not None:
                    keys.remove(p.key)
                    if not keys:
                        del self.by_tile[p.tile.index]
        done.sort(key=lambda o: (o.y, o.x, o.class_id, -o.score))
        return done


def resolve(members: Sequence[_Piece]) -> SceneObject | None:
    """One object from a group: the best whole view if a tile saw it whole, else the union of the pieces."""
    whole = [p for p in members if not p.cut]
    if whole:
        best = min(whole, key=lambda p: (-p.obj.score, -p.obj.pixels, p.key))
        return largest_part(best.obj)
    y0 = min(p.obj.y for p in members)
    x0 = min(p.obj.x for p in members)
    y1 = max(p.obj.bounds[2] for p in members)
    x1 = max(p.obj.bounds[3] for p in members)
    mask = np.zeros((y1 - y0, x1 - x0), bool)
    for p in members:
        oy, ox = p.obj.y - y0, p.obj.x - x0
        mask[oy:oy + p.obj.mask.shape[0], ox:ox + p.obj.mask.shape[1]] |= p.obj.mask
    return largest_part(SceneObject(y0, x0, mask, max(p.obj.score for p in members), members[0].obj.class_id))


def largest_part(obj: SceneObject) -> SceneObject | None:
    """``obj`` reduced to its largest 4-connected part, its mask cropped to that part's bounds."""
    labels, count = ndimage.label(obj.mask, structure=_FOUR)
    if count == 0:
        return None
    if count > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        keep = labels == int(np.argmax(sizes))
    else:
        keep = obj.mask
    rows, cols = np.flatnonzero(keep.any(axis=1)), np.flatnonzero(keep.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    if (r0, c0, r1, c1) == (0, 0, *keep.shape) and count == 1:
        return obj
    return SceneObject(obj.y + int(r0), obj.x + int(c0), keep[r0:r1, c0:c1].copy(), obj.score, obj.class_id)


@dataclass
class DetectionStats:
    """What a run of the engine did (filled in while its objects are consumed)."""

    tiles_total: int = 0
    tiles_run: int = 0
    objects: int = 0
    peak_pending: int = 0
    elapsed_s: float = 0.0


def detect_objects(detector: InstanceDetector, meta: BundleMeta, path: str, bands: tuple[list[int], float | None],
                   grid: TileGrid, batch_size: int, score_threshold: float, cache_mb: int, stats: DetectionStats,
                   on_tiles: Callable[[int], None] | None = None, pipelined: bool = True) -> Iterator[list[SceneObject]]:
    """Final scene objects of the scene at ``path``, a batch after each row of tiles.

    ``bands`` is (band indexes, declared fill value) as for the semantic predictor; ``on_tiles(n)`` is
    called as tiles are done (progress). Reading runs on a thread ahead of the detector (``pipelined``).
    """
    merger = ObjectMerger(grid, score_threshold)
    stats.tiles_total = len(grid)
    t0 = time.perf_counter()
    for tiles, valids, live, batch in tile_batches(path, bands[0], bands[1], meta, grid, cache_mb, batch_size,
                                                   pipelined):
        results = detector.detect(batch) if batch is not None else []
        if len(results) != len(live):
            raise RuntimeError(f"the detector returned {len(results)} results for {len(live)} tiles")
        found = dict(zip(live, results))
        stats.tiles_run += len(live)
        for i, (tile, valid) in enumerate(zip(tiles, valids)):
            final = merger.add(tile, found.get(i), valid)
            if final:
                stats.objects += len(final)
                yield final
        stats.peak_pending = max(stats.peak_pending, merger.peak_pending)
        if on_tiles is not None:
            on_tiles(len(tiles))
    final = merger.finish()
    stats.objects += len(final)
    stats.elapsed_s = time.perf_counter() - t0
    if final:
        yield final
