"""The architecture, held mechanically: which package may import which, and what importing costs.

The folders are the architecture (README "Layout"). These rules keep it that way:
- the runtime (``live/``) runs headless and is driven from outside: it never imports the rig or the window;
- models know nothing of the live loop, the rig, the window, the CLI or their exporters;
- the weights layer returns tensors and configs, never networks: it never imports models;
- the audio layer knows nothing of the window;
- importing the package, the CLI, the runtime or the offline path loads no Qt, PortAudio or ONNX Runtime
  (those load when a command needs them, so a headless box without them still runs everything else).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "livesound"

# (importer package, imported package, why) — the "never" arrows of the architecture.
NEVER = [
    ("livesound.live", "livesound.rig", "the rig drives the engine, not the reverse"),
    ("livesound.live", "livesound.app", "the engine runs headless"),
    ("livesound.live", "livesound.cli", "the engine knows no command line"),
    ("livesound.models", "livesound.live", "models know nothing of the live loop"),
    ("livesound.models", "livesound.rig", "models know nothing of the rig"),
    ("livesound.models", "livesound.app", "no Qt below the window"),
    ("livesound.models", "livesound.cli", "no CLI knowledge in models"),
    ("livesound.models", "exporters", "models do not know their exporters"),
    ("livesound.weights", "livesound.models", "loaders return tensors, not networks"),
    ("livesound.weights", "livesound.live", "loaders know nothing of the live loop"),
    ("livesound.audio", "livesound.app", "no Qt below the window"),
    ("livesound.audio", "livesound.live", "the audio layer feeds the runtime, not the reverse"),
]
HEAVY = ("PyQt6", "sounddevice", "onnxruntime")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of the file (function-level imports count too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_no_package_imports_what_the_architecture_forbids():
    files = sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "exporters").rglob("*.py"))
    assert len(files) > 40, "the package was not found"
    broken = []
    for path in files:
        module = _module_name(path)
        for imported in _imports(path):
            for importer, forbidden, why in NEVER:
                if _inside(module, importer) and _inside(imported, forbidden):
                    broken.append(f"{module} imports {imported}: {why}")
    assert not broken, "\n".join(sorted(set(broken)))


def test_the_rule_checker_catches_a_violation(tmp_path):
    """The checker is not vacuous: a planted import of the rig from the runtime is found."""
    planted = tmp_path / "planted.py"
    planted.write_text("def f():\n    from livesound.rig.osc import OscIn\n")
    assert "livesound.rig.osc" in _imports(planted)
    assert _inside("livesound.rig.osc", "livesound.rig") and not _inside("livesound.rigs", "livesound.rig")


def test_the_top_of_the_package_holds_only_a_few_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "files.py", "recording.py"], top


@pytest.mark.parametrize("modules", [
    ["livesound"],
    ["livesound.cli"],
    ["livesound.live", "livesound.live.engine", "livesound.live.build", "livesound.live.pipeline",
     "livesound.live.backends", "livesound.live.steering"],
    ["livesound.offline", "livesound.offline.generate", "livesound.offline.embed", "livesound.offline.optimize",
     "livesound.offline.targets", "livesound.offline.interpolate"],
])
def test_importing_loads_no_qt_portaudio_or_onnxruntime(modules):
    code = (f"import sys\nfor m in {modules!r}:\n    __import__(m)\n"
            f"print(','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"importing {modules} loaded {r.stdout.strip()}"
