# SPDX-License-Identifier: GPL-2.0-or-later
"""The two Processing algorithms. Each builds a worker command and runs it; geoseg does the work."""
from __future__ import annotations

from typing import Any

from qgis.core import (QgsProcessing, QgsProcessingAlgorithm, QgsProcessingContext, QgsProcessingException,
                       QgsProcessingFeedback, QgsProcessingLayerPostProcessorInterface,
                       QgsProcessingParameterBoolean, QgsProcessingParameterEnum, QgsProcessingParameterFile,
                       QgsProcessingParameterNumber, QgsProcessingParameterRasterDestination,
                       QgsProcessingParameterRasterLayer, QgsProcessingParameterVectorDestination,
                       QgsProcessingUtils, QgsRasterLayer, QgsVectorLayer)

from qgis.PyQt.QtGui import QIcon

from .. import ICON, settings
from ..sources import local_path, save_as_geotiff
from ..styling import read_legend, style_class_raster, style_polygons
from ..worker import (PredictOptions, Step, VectorizeOptions, WorkerCanceled, WorkerError, WorkerRun,
                      segment_steps, vectorize_command)

DEVICES = ["auto", "cpu", "cuda"]
CANCELED = "Canceled: geoseg was stopped and the files it had written were removed"
#: Post-processors must outlive ``processAlgorithm`` (QGIS holds only a C++ pointer); one per output path.
_STYLERS: dict[str, "_Styler"] = {}


class _Styler(QgsProcessingLayerPostProcessorInterface):
    """Styles a loaded output with the legend of the class map it came from."""

    def __init__(self, legend_from: str) -> None:
        super().__init__()
        self.legend_from = legend_from

    def postProcessLayer(self, layer: Any, context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> None:
        legend = read_legend(self.legend_from)
        if isinstance(layer, QgsRasterLayer):
            style_class_raster(layer, legend)
        elif isinstance(layer, QgsVectorLayer):
            style_polygons(layer, legend)


def _style_on_load(path: str, legend_from: str, context: QgsProcessingContext) -> None:
    if path and context.willLoadLayerOnCompletion(path):
        _STYLERS[path] = _Styler(legend_from)
        context.layerToLoadOnCompletionDetails(path).setPostProcessor(_STYLERS[path])


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
        self.addParameter(QgsProcessingParameterNumber("TILE", "Tile size (px; 0 = model's)",
                                                       QgsProcessingParameterNumber.Integer, 0, False, 0))
        self.addParameter(QgsProcessingParameterNumber("OVERLAP", "Overlap (px; -1 = model's)",
                                                       QgsProcessingParameterNumber.Integer, -1, False, -1))
        self.addParameter(QgsProcessingParameterEnum("DEVICE", "Device", DEVICES, defaultValue=0))
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
        overlap = self.parameterAsInt(parameters, "OVERLAP", context)
        opts = PredictOptions(
            scene=scene, output=output, model=self.parameterAsFile(parameters, "MODEL", context) or None,
            tile=self.parameterAsInt(parameters, "TILE", context) or None,
            overlap=None if overlap < 0 else overlap,
            device=DEVICES[self.parameterAsEnum(parameters, "DEVICE", context)], polygons=polygons,
            min_area=self.parameterAsDouble(parameters, "MIN_AREA", context) or None)
        worker = WorkerRun(segment_steps(python, opts), settings.new_log_path("segment"))
        if not _run(worker, feedback):
            return {}
        for path in filter(None, (output, polygons)):
            _style_on_load(path, output, context)
        return {"OUTPUT": output, "POLYGONS": polygons}


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
        _style_on_load(output, classmap, context)
        return {"OUTPUT": output}
