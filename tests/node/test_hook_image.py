"""The hook image as hooks/Dockerfile builds it (tools/images/images.py, through buildah).

Its root filesystem is read-only in the chart, so a module without bytecode in
the image is compiled again by every hook process. Run in the image's own
files, read-only: the hook's imports must all load from bytecode, and what the
image adds for the hook stays within 100 MB.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from prune import IMPORT_PROBE  # hooks/prune.py (pytest.ini's pythonpath)
from test_node_local import record_bench

from harness.node import image_builder

REPO = Path(__file__).resolve().parents[2]

LIMIT_MB = 100


def unpack(archive: Path, root: Path) -> dict[str, object]:
    """The image's files from a docker-archive (layers in order, whiteouts applied); returns its config."""
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
        config = json.load(outer.extractfile(manifest["Config"]))  # type: ignore[arg-type]
        for layer in manifest["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer)) as tar:  # type: ignore[arg-type]
                members = []
                for m in tar.getmembers():
                    name = Path(m.name)
                    if name.name.startswith(".wh."):
                        target = root / name.parent / name.name[4:]
                        subprocess.run(["rm", "-rf", str(target)], check=True)
                    elif not m.isdev():
                        members.append(m)
                tar.extractall(root, members=members, filter="tar")
    return config


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    archive = image_builder.build(["hook"])["hook"]
    root = tmp_path_factory.mktemp("hook-image")
    return root, unpack(archive, root)


def run_in_image(root: Path, config: dict[str, object], *argv: str) -> subprocess.CompletedProcess[str]:
    """argv in the image's files, read-only, with the image's environment, no network."""
    env: list[str] = []
    for item in config["config"]["Env"]:  # type: ignore[index]
        k, _, v = item.partition("=")
        env += ["--setenv", k, v]
    cmd = ["bwrap", "--ro-bind", str(root), "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
           "--unshare-all", "--die-with-parent", "--clearenv", *env, "--setenv", "HOME", "/nonexistent", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_every_module_the_hook_imports_loads_from_bytecode(rootfs: tuple[Path, dict[str, object]]) -> None:
    root, config = rootfs
    # python -v says "code object from <file>.py" for each module it compiles from source
    # ("code object from '<file>.pyc'" for one loaded from bytecode)
    proc = run_in_image(root, config, "/opt/venv/bin/python", "-v", "-c", IMPORT_PROBE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout)
    origins = [line.removeprefix("# code object from ").strip("'") for line in proc.stderr.splitlines()
               if line.startswith("# code object from ")]
    compiled = sorted(o for o in origins if o.endswith(".py"))
    assert len([o for o in origins if o.endswith(".pyc")]) > 300, "python -v reported no bytecode loads"
    assert len(loaded) > 300, f"the probe loaded only {len(loaded)} modules"
    assert not compiled, f"{len(compiled)} of {len(loaded)} modules compiled at start, e.g. {compiled[:5]}"


def test_import_kubernetes_time_in_the_image(rootfs: tuple[Path, dict[str, object]]) -> None:
    root, config = rootfs
    times = []
    for _ in range(3):
        t0 = time.monotonic()
        proc = run_in_image(root, config, "/opt/venv/bin/python", "-c", "import kubernetes.client, kubernetes.config")
        times.append(time.monotonic() - t0)
        assert proc.returncode == 0, proc.stderr[-2000:]
    record_bench("hook_image_import_kubernetes_s", min(times))


def test_hook_content_within_limit(rootfs: tuple[Path, dict[str, object]]) -> None:
    root, _ = rootfs
    venv = root / "opt" / "venv"
    size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
    pyc = sum(f.stat().st_size for f in venv.rglob("*.pyc"))
    record_bench("hook_image_venv_mb", size / 1e6)
    assert pyc > 5e6, f"only {pyc / 1e6:.1f} MB of bytecode in the venv"
    assert size / 1e6 <= LIMIT_MB, f"the hook's venv holds {size / 1e6:.1f} MB (limit {LIMIT_MB} MB)"
