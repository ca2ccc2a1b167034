#!/usr/bin/env python3
"""The plugin in a real QGIS desktop, driven by real mouse clicks: run by hand before a plugin release.

    GEOSEG_PYTHON=.venv/bin/python python3 qgis_plugin/desktop_check.py [--out docs/desktop]

Headless tests cannot see what a user meets on a screen: window sizes, cut text, icons, the message bar,
the Processing dialog's log. This script starts a virtual X display (Xvfb), QGIS with a fresh profile and
the plugin from this checkout, then clicks like a user with xdotool (real X input events): the plugin's
toolbar button, *Natural colour*, *Segment*, and in the Processing dialog *Run* then *Cancel*. It checks
what QGIS shows after each step, saves screenshots under ``--out`` and exits non-zero on any failed check.
``desktop_probe.py`` runs inside QGIS and only reports widget positions and state (it clicks nothing).

Needs: ``qgis`` (3.22 or later), ``Xvfb``, ``xdotool`` and ImageMagick's ``import``
(Debian: ``apt-get install qgis xvfb xdotool imagemagick``), and a geoseg environment (``GEOSEG_PYTHON``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SCENE = REPO / "sample_tiles" / "zion_landsat8_b2345.tif"
TOOLS = ("qgis", "Xvfb", "xdotool", "import", "convert")
SCREEN = (1440, 900)


class CheckFailed(Exception):
    """A check a user would notice failed; the message says what was seen."""


class Desktop:
    """Xvfb + QGIS with a fresh profile and this checkout's plugin; the probe's state; xdotool clicks."""

    def __init__(self, work: Path, out: Path, display: str, python: str) -> None:
        self.work, self.out, self.display, self.python = work, out, display, python
        self.processes: list[subprocess.Popen] = []
        self.env = {**os.environ, "DISPLAY": display, "GEOSEG_PYTHON": python, "QT_QPA_PLATFORM": "xcb",
                    "GEOSEG_CHECK_DIR": str(work), "GEOSEG_CHECK_SCENE": str(work / SCENE.name),
                    "XDG_RUNTIME_DIR": str(work / "runtime"), "HOME": str(work / "home")}
        for key in ("QT_QPA_PLATFORM_PLUGIN_PATH", "PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV"):
            self.env.pop(key, None)
        # QGIS's embedded Python finds its standard library from the first python3 on PATH: a pyenv or
        # conda one before the system's gives "Couldn't load SIP module". QGIS's own folder goes first.
        qgis_bin = str(Path(shutil.which("qgis") or "/usr/bin/qgis").parent)
        self.env["PATH"] = os.pathsep.join([qgis_bin, self.env.get("PATH", "")])

    # -- start and stop -----------------------------------------------------------------------------------
    def start(self) -> None:
        (self.work / "runtime").mkdir(mode=0o700)
        (self.work / "home").mkdir()
        shutil.copyfile(SCENE, self.work / SCENE.name)  # QGIS writes .aux.xml beside what it opens
        profiles = self._profile()
        self._spawn(["Xvfb", self.display, "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24", "-nolisten", "tcp"],
                    "xvfb.log")
        self.wait(lambda: subprocess.run(["xdotool", "getmouselocation"], env=self.env,
                                         capture_output=True).returncode == 0, 20, "Xvfb to start")
        self._spawn(["qgis", "--nologo", "--noversioncheck", "--profiles-path", str(profiles),
                     "--profile", "default", "--code", str(HERE / "desktop_probe.py")], "qgis.log")

    def _profile(self) -> Path:
        """A fresh QGIS profile with this checkout's plugin installed and enabled (no first-run questions)."""
        profiles = self.work / "qgis"  # QGIS adds "profiles/" to --profiles-path
        plugins = profiles / "profiles" / "default" / "python" / "plugins"
        plugins.mkdir(parents=True)
        (plugins / "geoseg_qgis").symlink_to(HERE / "geoseg_qgis")
        ini = profiles / "profiles" / "default" / "QGIS" / "QGIS3.ini"
        ini.parent.mkdir(parents=True)
        width, height = SCREEN
        ini.write_text("[PythonPlugins]\ngeoseg_qgis=true\nprocessing=true\n\n"
                       "[qgis]\nshowTips322=false\ncheckVersion=false\nallowVersionCheck=false\n"
                       "migration\\settings-migrated=true\n\n"
                       f"[UI]\ngeometry=@Rect(0 0 {width} {height})\n", encoding="utf-8")
        return profiles

    def _spawn(self, command: list[str], log: str) -> None:
        with open(self.work / log, "w") as out:
            self.processes.append(subprocess.Popen(command, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                                   stdin=subprocess.DEVNULL))

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # -- what QGIS shows ----------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        try:
            state = json.loads((self.work / "state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if state.get("errors"):
            raise CheckFailed("the probe inside QGIS failed:\n" + "\n".join(state["errors"]))
        python_errors = [e["message"] for e in state.get("log", []) if e["tag"] == "Python error"]
        if python_errors:  # QGIS also shows each in a modal window that would swallow the next clicks
            raise CheckFailed("QGIS reported a Python error:\n" + "\n".join(python_errors))
        return state

    def wait(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(p.poll() is not None for p in self.processes):
                raise CheckFailed(f"QGIS or Xvfb exited while waiting for {what} (see {self.work})")
            result = condition()
            if result:
                return result
            time.sleep(0.25)
        raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}")

    def wait_state(self, condition: Callable[[dict[str, Any]], Any], timeout: float, what: str) -> dict[str, Any]:
        """The probe's first state for which ``condition`` holds."""
        return self.wait(lambda: (lambda s: s if s and condition(s) else None)(self.state()), timeout, what)

    def settled(self, where: Callable[[dict[str, Any]], Any], timeout: float, what: str) -> dict[str, Any]:
        """The state once ``where(state)`` (a widget's rectangle) is the same in two reads 0.5 s apart.

        A window just shown is still being placed: a click at its first position can miss.
        """
        last: list[Any] = [None]

        def same() -> dict[str, Any] | None:
            state = self.state()
            now = where(state) if state else None
            settled = now is not None and now == last[0]
            last[0] = now
            time.sleep(0.25)
            return state if settled else None

        return self.wait(same, timeout, what)

    # -- real input ---------------------------------------------------------------------------------------
    def click(self, rect: dict[str, Any], what: str) -> None:
        if not (rect and rect.get("visible") and rect.get("enabled")):
            raise CheckFailed(f"{what} cannot be clicked: {rect}")
        x, y = rect["x"] + rect["w"] // 2, rect["y"] + rect["h"] // 2
        # Away first, then onto the widget and a pause: a window that appeared under a resting pointer gets
        # no enter event, and Qt may drop a click that arrives before one.
        subprocess.run(["xdotool", "mousemove", "--sync", str(x + 40), str(y + 40), "mousemove", "--sync",
                        str(x), str(y), "sleep", "0.3", "click", "1"], env=self.env, check=True)
        print(f"  clicked {what} at {x},{y}")

    def screenshot(self, name: str, rect: dict[str, Any] | None = None) -> Path:
        """The whole screen, or the part ``rect`` covers, as ``--out/NAME.png``."""
        path = self.out / f"{name}.png"
        raw = self.work / "screen.png"
        subprocess.run(["import", "-window", "root", str(raw)], env=self.env, check=True)
        command = ["convert", str(raw)]
        if rect:
            command += ["-crop", f"{rect['w']}x{rect['h']}+{rect['x']}+{rect['y']}", "+repage"]
        # 128 colours without dithering: a third of the size, still sharp text (they are committed).
        command += ["+dither", "-colors", "128", "-define", "png:compression-level=9", str(path)]
        subprocess.run(command, env=self.env, check=True)
        print(f"  screenshot {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
        return path

    def command(self, name: str) -> None:
        """Ask the probe for one of its set-up steps (see desktop_probe.py)."""
        (self.work / f"cmd-{name}").touch()


# -- the user story, step by step ----------------------------------------------------------------------------
def check_startup(desk: Desktop) -> None:
    desk.wait_state(lambda s: s["ready"] and s["menu"] and s["layers"], 180, "QGIS with the plugin and the scene")
    # No window manager runs on Xvfb: give QGIS's main window the whole screen, as a user would.
    subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "QGIS", "windowmove", "0", "0",
                    "windowsize", str(SCREEN[0]), str(SCREEN[1])], env=desk.env, check=True)
    state = desk.wait_state(lambda s: s["toolbar_button"], 30, "the plugin's toolbar button")
    time.sleep(2)  # let the canvas draw at the new size
    desk.screenshot("1_qgis_with_scene")
    scene = state["layers"][0]
    if scene.get("rgb") != [1, 2, 3]:
        print(f"  note: QGIS drew the scene with bands {scene.get('rgb')} (QGIS's default is 1-2-3)")


def check_dialog(desk: Desktop) -> dict[str, Any]:
    desk.click(desk.state()["menu"]["raster"], "the Raster menu")
    desk.click(desk.wait_state(lambda s: s["menu"]["geoseg"], 10, "the Raster menu to open")["menu"]["geoseg"],
               "Raster > geoseg")
    desk.click(desk.wait_state(lambda s: s["menu"]["segment"], 10, "the geoseg menu to open")["menu"]["segment"],
               "Raster > geoseg > Segment raster…")
    state = desk.wait_state(lambda s: s["dialog"] and s["dialog"]["segment"]["enabled"]
                            and "Bands:" in s["dialog"]["model_info"], 180,
                            "the dialog to show the model and say the layer fits (Segment enabled)")
    state = desk.settled(lambda s: s["dialog"] and s["dialog"]["rect"], 10, "the dialog to settle")
    dialog = state["dialog"]
    if dialog["cut_labels"]:
        raise CheckFailed(f"the dialog cuts off text: {dialog['cut_labels']}")
    if "GEOSEG_PYTHON" not in dialog["python_placeholder"]:
        raise CheckFailed(f"the empty interpreter field does not show GEOSEG_PYTHON: {dialog}")
    if "Bands:" not in dialog["model_info"] or "fits the model" not in dialog["fit_info"]:
        raise CheckFailed(f"the dialog does not show the model's bands or the fit: {dialog}")
    desk.screenshot("2_dialog", dialog["rect"])
    return dialog


def check_natural_colour(desk: Desktop, dialog: dict[str, Any]) -> None:
    desk.click(dialog["natural"], "Natural colour")
    desk.wait_state(lambda s: s["layers"][0].get("rgb") == [3, 2, 1], 20,
                    "the scene drawn with bands 3-2-1 (red, green, blue)")
    time.sleep(2)  # let the canvas redraw
    desk.screenshot("2b_natural_colour")


def check_segment(desk: Desktop, dialog: dict[str, Any]) -> None:
    desk.click(dialog["segment"], "Segment")
    state = desk.wait_state(lambda s: any(b["level"] == 3 for b in s["bar"]) or
                            any(b["level"] == 2 for b in s["bar"]), 600, "the run's message")
    success = [b for b in state["bar"] if b["level"] == 3]  # Qgis.Success
    if not success:
        raise CheckFailed(f"the run failed: {state['bar']}")
    names = [layer["name"] for layer in state["layers"]]
    if len(set(names)) != len(names) or len(names) != 3:
        raise CheckFailed(f"expected three layers with distinct names, got {names}")
    text = success[-1]["text"]  # what the bar shows
    if "done in" not in text or text.endswith("…") or "polygons" not in (success[-1]["details"] or ""):
        raise CheckFailed(f"the success message is not a one-line headline with details: {success[-1]}")
    time.sleep(2)  # let the canvas draw the new layers
    for _ in range(3):
        # QGIS announces finished tasks itself ("Task complete") when its window is not the active one,
        # which it never is on a bare Xvfb; close such notes as a user would, to show the plugin's message.
        current = desk.wait_state(lambda s: s["bar_current"], 10, "the message bar")["bar_current"]
        if current["geoseg_text"]:
            break
        desk.click(current["close"], f"close '{current['text']}' on the message bar")
        time.sleep(0.5)
    desk.screenshot("3_result")
    desk.click(current["details"], "Details… on the message bar")
    viewer = desk.settled(lambda s: s["bar_current"]["viewer"], 20, "the details window")["bar_current"]["viewer"]
    if "area per class" not in viewer["text"] or "wrote polygons" not in viewer["text"]:
        raise CheckFailed(f"the details window does not show the areas and files: {viewer['text']!r}")
    desk.screenshot("3b_result_details", viewer["rect"])
    desk.click(viewer["close"], "Close (details window)")
    desk.wait_state(lambda s: s["bar_current"] and not s["bar_current"]["viewer"], 10,
                    "the details window to close")


def check_processing_cancel(desk: Desktop) -> None:
    layers = desk.state()["layers"]
    desk.command("open_processing")
    state = desk.settled(lambda s: s["processing"] and s["processing"]["run"], 60,
                         "the Processing dialog of Segment raster")
    desk.click(state["processing"]["run"], "Run (Processing)")
    state = desk.wait_state(lambda s: s["processing"] and s["processing"]["cancel"]["enabled"]
                            and "predict: " in s["processing"]["log"], 60,
                            "geoseg to start its tiles (Cancel enabled)")
    desk.click(state["processing"]["cancel"], "Cancel (Processing)")
    state = desk.wait_state(lambda s: "Execution failed" in s["processing"]["log"], 60,
                            "Processing to report the canceled run")
    if "Canceled: geoseg was stopped" not in state["processing"]["log"]:
        raise CheckFailed("the Processing log does not say the run was canceled:\n" + state["processing"]["log"])
    desk.screenshot("4_processing_canceled", state["processing"]["rect"])
    time.sleep(1)
    if desk.state()["layers"] != layers or list(desk.work.glob("processing_classes*")):
        raise CheckFailed(f"the canceled run left a layer or a file: {desk.state()['layers']}, "
                          f"{list(desk.work.glob('processing_classes*'))}")


def check_log(desk: Desktop) -> None:
    """No Python warnings or errors from the plugin, and no GeoPackage version warning from GDAL, neither
    in QGIS's message log nor on its terminal (GDAL prints "Warning 1: This version of GeoPackage ...")."""
    def bad(text: str) -> bool:
        return any(k in text for k in ("ResourceWarning", "geoseg_qgis", "Traceback", "GeoPackage",
                                       "user_version"))

    logged = [entry for entry in desk.state()["log"] if bad(entry["message"])]
    terminal = [line for line in (desk.work / "qgis.log").read_text(errors="replace").splitlines() if bad(line)]
    if logged or terminal:
        raise CheckFailed("QGIS reported what a user would see:\n" + json.dumps(logged + terminal, indent=1))



def run(desk: Desktop) -> list[str]:
    """Every step in order; the first failure stops the story (later steps depend on it)."""
    failures: list[str] = []
    try:
        print("QGIS starts with the plugin and the scene")
        check_startup(desk)
        print("the dialog: text not cut, interpreter from GEOSEG_PYTHON shown, the layer fits")
        dialog = check_dialog(desk)
        print("natural colour from the band names")
        check_natural_colour(desk, dialog)
        print("Segment: styled layers with distinct names, a one-line message with details")
        check_segment(desk, dialog)
        print("Processing: Run, then Cancel, and the log says so")
        check_processing_cancel(desk)
        print("QGIS's message log")
        check_log(desk)
    except CheckFailed as exc:
        failures.append(str(exc))
        desk.screenshot("failure")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "desktop", help="where screenshots go")
    parser.add_argument("--display", default=":97", help="the Xvfb display to use")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (profile, logs, state)")
    args = parser.parse_args()
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    python = os.environ.get("GEOSEG_PYTHON") or str(REPO / ".venv" / "bin" / "python")
    if missing:
        print(f"missing: {', '.join(missing)} (Debian: apt-get install qgis xvfb xdotool imagemagick)")
        return 2
    if not os.access(python, os.X_OK):
        print(f"no geoseg environment at {python}: set GEOSEG_PYTHON to its python")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="geoseg-desktop-"))
    desk = Desktop(work, args.out.resolve(), args.display, python)
    try:
        desk.start()
        failures = run(desk)
    finally:
        desk.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    for failure in failures:
        print(f"FAILED: {failure}")
    print("desktop check " + ("FAILED" if failures else "passed") + (f"; work folder {work}" if args.keep else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
