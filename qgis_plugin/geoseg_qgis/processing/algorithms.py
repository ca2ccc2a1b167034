# SPDX-License-Identifier: GPL-2.0-or-later
"""The Processing algorithms. Each builds a worker command and runs it; geoseg does the work."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qgis.core import (QgsProcessing, QgsProcessingAlgorithm, QgsProcessingContext, QgsProcessingException,
                       QgsProcessingFeedback, QgsProcessingLayerPostProcessorInterface, QgsProcessingOutputNumber,
                       QgsProcessingParameterBoolean, QgsProcessingParameterEnum, QgsProcessingParameterFile,
                       QgsProcessingParameterNumber, QgsProcessingParameterRasterDestination,
                       QgsProcessingParameterRasterLayer, QgsProcessingParameterVectorDestination,
                       QgsProcessingUtils, QgsRasterLayer, QgsVectorLayer)

from qgis.PyQt.QtGui import QIcon

from .. import ICON, settings
from ..results import objects_line
from ..sources import local_path, save_as_geotiff
from ..styling import read_legend, style_class_raster, style_object_ids, style_objects, style_polygons
from ..worker import (OBJECT_METHOD, DetectOptions, PredictOptions, Step, VectorizeOptions, WorkerCanceled,
                      WorkerError, WorkerRun, detect_steps, run_info, segment_steps, vectorize_command)

DEVICES = ["auto", "cpu", "cuda"]
CANCELED = "Canceled: geoseg was stopped and the files it had written were removed"
#: Post-processors must outlive ``processAlgorithm`` (QGIS holds only a C++ pointer); one per output path.
_STYLERS: dict[str, "_Styler"] = {}


class _Styler(QgsProcessingLayerPostProcessorInterface):
    """Styles an output when Processing loads it."""

    def __init__(self, style: Callable[[Any], None]) -> None:
        super().__init__()
        self.style = style

    def postProcessLayer(self, layer: Any, context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> None:
        self.style(layer)


def _style_on_load(path: str | None, style: Callable[[Any], None], context: QgsProcessingContext) -> None:
    if path and context.willLoadLayerOnCompletion(path):
        _STYLERS[path] = _Styler(style)
        context.layerToLoadOnCompletionDetails(path).setPostProcessor(_STYLERS[path])


def _class_legend(classmap: str) -> Callable[[Any], None]:
    """Style a class map or its polygons with the class map's legend."""
    def style(layer: Any) -> None:
        legend = read_legend(classmap)
        if isinstance(layer, QgsRasterLayer):
            style_class_raster(layer, legend)
        elif isinstance(layer, QgsVectorLayer):
            style_polygons(layer, legend)

    return style


def _run(worker: WorkerRun, feedback: QgsProcessingFeedback) -> dict[str, Any]:
    """Run the worker with Processing's progress and cancel; failures become ``QgsProcessingException``."""
    def on_event(event: dict[str, Any]) -> None:
        if event.get("event") == "start":
            feedback.pushInfo(f"{event.get('task')}: {event.get('total')} {event.get('unit', '')}")

    feedback.pushCommandInfo(worker.describe())
    try:
        result = worker.run(on_event, feedback.isCanceled, feedback.setProgress)
    except WorkerCanceled:
        # Processing itself then logs only "Execution failed after N seconds": say what happened first.
        feedback.pushWarning(CANCELED)
        return {}
    except WorkerError as exc:
        raise QgsProcessingException(str(exc)) from exc
    feedback.pushInfo(f"done in {result.seconds:.1f} s; log: {result.log_path}")
    return result.dones[0]


def _scene_file(alg: QgsProcessingAlgorithm, parameters: dict, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> str:
    """The input layer's file; a layer that is not a local file is first saved to a temporary GeoTIFF."""
    layer = alg.parameterAsRasterLayer(parameters, "INPUT", context)
    if layer is None:
        raise QgsProcessingException("INPUT: not a raster layer")
    path = local_path(layer)
    if path is None:
        path = QgsProcessingUtils.generateTempFilename(f"{layer.name()}.tif")
        feedback.pushInfo(f"{layer.name()} is not a local file: saving it to {path} for geoseg")
        try:
            save_as_geotiff(layer, path)
        except ValueError as exc:
            raise QgsProcessingException(str(exc)) from exc
    return path


def _python() -> str:
    try:
        return settings.interpreter()
    except WorkerError as exc:
        raise QgsProcessingException(str(exc)) from exc


class _GeosegAlgorithm(QgsProcessingAlgorithm):
    def icon(self) -> QIcon:
        """geoseg's icon in the toolbox, the modeler and the history (not the generic gear)."""
        return QIcon(ICON)

    def svgIconPath(self) -> str:  # noqa: N802 - QGIS's name
        return ICON

    def group(self) -> str:
        return ""

    def groupId(self) -> str:
        return ""

    def createInstance(self) -> QgsProcessingAlgorithm:
        return type(self)()

    def _add_engine_parameters(self) -> None:
        """Tile, overlap and device: how geoseg runs a model over the scene."""
        self.addParameter(QgsProcessingParameterNumber("TILE", "Tile size (px; 0 = model's)",
                                                       QgsProcessingParameterNumber.Integer, 0, False, 0))
        self.addParameter(QgsProcessingParameterNumber("OVERLAP", "Overlap (px; -1 = model's)",
                                                       QgsProcessingParameterNumber.Integer, -1, False, -1))
        self.addParameter(QgsProcessingParameterEnum("DEVICE", "Device", DEVICES, defaultValue=0))

    def _engine(self, parameters: dict, context: QgsProcessingContext) -> dict[str, Any]:
        """The engine parameters as ``PredictOptions``/``DetectOptions`` fields (``None``: the model's)."""
        overlap = self.parameterAsInt(parameters, "OVERLAP", context)
        return {"tile": self.parameterAsInt(parameters, "TILE", context) or None,
                "overlap": None if overlap < 0 else overlap,
                "device": DEVICES[self.parameterAsEnum(parameters, "DEVICE", context)]}


class SegmentRasterAlgorithm(_GeosegAlgorithm):
    """geoseg predict: a raster layer to a class map (and optionally polygons)."""

    def name(self) -> str:
        return "segment"

    def displayName(self) -> str:
        return "Segment raster"

    def shortHelpString(self) -> str:
        return (
            "Segments a raster layer into land-cover classes with a geoseg model and writes a class map "
            "GeoTIFF (colour table and class names embedded), optionally also polygons.\n\n"
            "<b>Input raster</b>: a multiband image; a layer that is not a local file is saved to a "
            "temporary GeoTIFF first. Its bands must match the model's (see <i>geoseg info MODEL</i>).\n"
            "<b>Model</b>: a .safetensors geoseg bundle; empty = the default model of your geoseg.\n"
            "<b>Tile size / overlap</b>: pixels; 0 / -1 = the values the model was trained with.\n"
            "<b>Device</b>: auto uses a GPU when the geoseg environment has one.\n"
            "<b>Minimum polygon area</b>: m²; smaller patches are merged into their neighbours.\n\n"
            "geoseg runs in its own Python environment: set its interpreter in the plugin dialog "
            "(Raster > geoseg > Segment raster, field 'geoseg Python') or with GEOSEG_PYTHON. The worker "
            "log's path is printed with any error.")

    def initAlgorithm(self, config: dict | None = None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Input raster"))
        self.addParameter(QgsProcessingParameterFile("MODEL", "Model (.safetensors; empty = default model)",
                                                     extension="safetensors", optional=True))
        self._add_engine_parameters()
        self.addParameter(QgsProcessingParameterNumber("MIN_AREA", "Minimum polygon area (m²)",
                                                       QgsProcessingParameterNumber.Double, 0.0, False, 0.0))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Class map"))
        self.addParameter(QgsProcessingParameterVectorDestination(
            "POLYGONS", "Polygons", QgsProcessing.TypeVectorPolygon, optional=True, createByDefault=False))

    def processAlgorithm(self, parameters: dict, context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        python = _python()
        scene = _scene_file(self, parameters, context, feedback)
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        polygons = self.parameterAsOutputLayer(parameters, "POLYGONS", context) or None
        opts = PredictOptions(
            scene=scene, output=output, model=self.parameterAsFile(parameters, "MODEL", context) or None,
            polygons=polygons, min_area=self.parameterAsDouble(parameters, "MIN_AREA", context) or None,
            **self._engine(parameters, context))
        worker = WorkerRun(segment_steps(python, opts), settings.new_log_path("segment"))
        if not _run(worker, feedback):
            return {}
        for path in (output, polygons):
            _style_on_load(path, _class_legend(output), context)
        return {"OUTPUT": output, "POLYGONS": polygons}


class DetectObjectsAlgorithm(_GeosegAlgorithm):
    """geoseg predict with an instance model or bright-objects: a raster layer to objects as polygons."""

    def name(self) -> str:
        return "detect"

    def displayName(self) -> str:
        return "Detect objects"

    def shortHelpString(self) -> str:
        return (
            "Finds objects such as buildings in a raster layer and writes one polygon per object with the "
            "attributes instance_id, class_id, class_name, score and area_m2 (true area), optionally also a "
            "raster of object ids. Objects seen by two tiles are merged into one.\n\n"
            "<b>Input raster</b>: a layer that is not a local file is saved to a temporary GeoTIFF first.\n"
            "<b>Model</b>: an instance model (a .safetensors geoseg bundle whose task is instance, e.g. a "
            f"Mask R-CNN trained with geoseg train); empty = <i>{OBJECT_METHOD}</i>, a method without a "
            "model that finds objects brighter than their surroundings (a baseline).\n"
            "<b>Minimum score</b>: 0-1; objects scoring below it are left out; -1 = the model's threshold.\n"
            "<b>Tile size / overlap</b>: pixels; 0 / -1 = the model's. Choose an overlap larger than the "
            "objects: then some tile sees each object whole.\n"
            "<b>Device</b>: auto uses a GPU when the geoseg environment has one.\n\n"
            "geoseg runs in its own Python environment: set its interpreter in the plugin dialog "
            "(Raster > geoseg > Segment raster, field 'geoseg Python') or with GEOSEG_PYTHON.")

    def initAlgorithm(self, config: dict | None = None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Input raster"))
        self.addParameter(QgsProcessingParameterFile(
            "MODEL", f"Instance model (.safetensors; empty = {OBJECT_METHOD}, no model)",
            extension="safetensors", optional=True))
        self.addParameter(QgsProcessingParameterNumber("SCORE_THRESHOLD", "Minimum score (0-1; -1 = model's)",
                                                       QgsProcessingParameterNumber.Double, -1.0, False, -1.0, 1.0))
        self._add_engine_parameters()
        self.addParameter(QgsProcessingParameterVectorDestination("OUTPUT", "Objects",
                                                                  QgsProcessing.TypeVectorPolygon))
        self.addParameter(QgsProcessingParameterRasterDestination("INSTANCES", "Object ids", optional=True,
                                                                  createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber("N_OBJECTS", "Objects found"))

    def processAlgorithm(self, parameters: dict, context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        python = _python()
        scene = _scene_file(self, parameters, context, feedback)
        model = self.parameterAsFile(parameters, "MODEL", context) or None
        if model:
            _require_instance_model(python, model)
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        ids = self.parameterAsOutputLayer(parameters, "INSTANCES", context) or None
        score = self.parameterAsDouble(parameters, "SCORE_THRESHOLD", context)
        opts = DetectOptions(scene=scene, output=output, model=model, score_threshold=None if score < 0 else score,
                             instances_raster=ids, **self._engine(parameters, context))
        done = _run(WorkerRun(detect_steps(python, opts), settings.new_log_path("detect")), feedback)
        if not done:
            return {}
        feedback.pushInfo(objects_line(done))
        _style_on_load(output, lambda layer: style_objects(layer, done["color_per_class"]), context)
        _style_on_load(ids, lambda layer: style_object_ids(layer, done["n_objects"]), context)
        return {"OUTPUT": output, "INSTANCES": ids, "N_OBJECTS": done["n_objects"]}


def _require_instance_model(python: str, model: str) -> None:
    """A semantic model would make a class map, not objects: say so before running (geoseg would refuse the
    .gpkg output with a message about class maps)."""
    try:
        task = run_info(python, model).get("task")
    except WorkerError as exc:
        raise QgsProcessingException(str(exc)) from exc
    if task != "instance":
        raise QgsProcessingException(
            f"{model} is not an instance model (its task is {task or 'semantic'}: a class per pixel): run "
            f"geoseg > Segment raster with it, or leave Model empty to detect objects with {OBJECT_METHOD}")


class VectorizeClassMapAlgorithm(_GeosegAlgorithm):
    """geoseg vectorize: a class map to polygons with class_id, class_name and area_m2."""

    def name(self) -> str:
        return "vectorize"

    def displayName(self) -> str:
        return "Vectorize class map"

    def shortHelpString(self) -> str:
        return (
            "Turns a class map (a single-band integer raster such as geoseg's output) into polygons with "
            "the attributes class_id, class_name and area_m2 (true area, also for geographic CRSs). "
            "Polygons are merged across geoseg's internal blocks, so none are cut at tile borders.\n\n"
            "<b>Minimum area</b>: m²; smaller patches are merged into their largest neighbour.\n"
            "<b>Simplify tolerance</b>: in the layer's units; topology-preserving over the whole coverage, "
            "so neighbours keep sharing borders (no gaps or overlaps). 0 = no simplification.\n"
            "<b>Dissolve</b>: one (multi)polygon per class.\n\n"
            "Class names come from the class map's GEOSEG_CLASSES tag (else its colour table).")

    def initAlgorithm(self, config: dict | None = None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Class map"))
        self.addParameter(QgsProcessingParameterNumber("MIN_AREA", "Minimum polygon area (m²)",
                                                       QgsProcessingParameterNumber.Double, 0.0, False, 0.0))
        self.addParameter(QgsProcessingParameterNumber("SIMPLIFY", "Simplify tolerance (layer units)",
                                                       QgsProcessingParameterNumber.Double, 0.0, False, 0.0))
        self.addParameter(QgsProcessingParameterBoolean("DISSOLVE", "Dissolve by class", False))
        self.addParameter(QgsProcessingParameterVectorDestination("OUTPUT", "Polygons",
                                                                  QgsProcessing.TypeVectorPolygon))

    def processAlgorithm(self, parameters: dict, context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        python = _python()
        classmap = _scene_file(self, parameters, context, feedback)
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        opts = VectorizeOptions(
            classmap=classmap, output=output,
            min_area=self.parameterAsDouble(parameters, "MIN_AREA", context) or None,
            simplify=self.parameterAsDouble(parameters, "SIMPLIFY", context) or None,
            dissolve=self.parameterAsBool(parameters, "DISSOLVE", context))
        worker = WorkerRun([Step(vectorize_command(python, opts), [output])], settings.new_log_path("vectorize"))
        if not _run(worker, feedback):
            return {}
        _style_on_load(output, _class_legend(classmap), context)
        return {"OUTPUT": output}
