"""The container images the local node runs, made here because no container registry can be reached.

Invoked by scripts/bootstrap.sh (`python -m devstack.image`) and by the node (devstack/node.py), which
imports the archives into its containerd. Three images, each cached under `$QC_CACHE_DIR/images/`:
1. the base: the Dockerfile's `FROM` (python:3.11.7-slim-bookworm) cannot be pulled, so a Debian bookworm
   minbase with Debian's CPython (3.11.2 stands in for 3.11.7) is made with mmdebstrap and tagged with
   that name in buildah's store;
2. the pause image, compiled from `build/pause/linux/pause.c` of the pinned k8s.io/kubernetes module;
3. the project's image, built from the repo's Dockerfile with `buildah bud` as a user builds it, rebuilt
   whenever a file of its build context changes (the archive is named by their hash);
4. the demo's worker image, made as the README tells users to make theirs: FROM the project's image, plus
   the module holding the task (devstack/demo_tasks.py).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from devstack import binaries, netns

PROJECT_IMAGE = "localhost/queue-consumer-operator:dev"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
DEMO_WORKER_IMAGE = "localhost/qc-demo-worker:dev"
DEMO_TASK_FILES = ("devstack/__init__.py", "devstack/demo_tasks.py", "devstack/traffic.py")
DEMO_WORKER_CONTAINERFILE = f"""FROM {PROJECT_IMAGE}
COPY devstack /app/devstack
ENV PYTHONPATH=/app
"""
BASE_PACKAGES = "python3,python3-venv,ca-certificates,netbase,tzdata,passwd"
# The build context the Dockerfile copies from (the rest is excluded by .dockerignore).
CONTEXT_PATHS = (
    "Dockerfile",
    ".dockerignore",
    "pyproject.toml",
    "constraints.txt",
    "README.md",
    "common",
    "operator",
    "worker",
)
# pip inside the build reaches the package index only with the host's CA bundle and pip configuration.
HOST_BUILD_MOUNTS = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pip.conf")
BUILD_TIMEOUT_SECONDS = 20 * 60


class ImageToolMissing(RuntimeError):
    """A tool the images need (buildah, mmdebstrap, gcc, go) is not installed."""


def images_dir() -> Path:
    path = binaries.cache_dir() / "images"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _tool(name: str) -> str:
    found = shutil.which(name) or (
        "/usr/local/go/bin/go" if name == "go" and Path("/usr/local/go/bin/go").exists() else None
    )
    if found is None:
        raise ImageToolMissing(f"{name} is not installed: run `make bootstrap` (scripts/bootstrap.sh)")
    return found


def _run(*argv: str, cwd: Path | None = None) -> str:
    # Builds reach the package registries: from inside the stack's namespace (no route out) they run
    # in the network namespace the process came from.
    result = subprocess.run(
        netns.host_command(list(argv)),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} ... failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


def base_image_name(dockerfile: Path = binaries.REPO_ROOT / "Dockerfile") -> str:
    """The Dockerfile's first `FROM`, as buildah names it (docker.io/library/...)."""
    match = re.search(r"^FROM\s+(\S+)", dockerfile.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no FROM in {dockerfile}")
    name = match.group(1)
    return name if "/" in name.split(":")[0] else f"docker.io/library/{name}"


def _has_image(name: str) -> bool:
    inspect = [_tool("buildah"), "inspect", "--type", "image", name]
    return subprocess.run(inspect, capture_output=True, check=False).returncode == 0


def ensure_base() -> str:
    """The Dockerfile's base in buildah's store, made from a Debian minbase when it is missing."""
    name = base_image_name()
    if _has_image(name):
        return name
    rootfs = images_dir() / "base-bookworm.tar"
    if not rootfs.exists():
        print(f"making the base image {name} with mmdebstrap (about a minute, cached afterwards)", flush=True)
        partial = rootfs.with_suffix(".partial.tar")
        _run(_tool("mmdebstrap"), "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm", str(partial))
        partial.rename(rootfs)
    buildah = _tool("buildah")
    container = _run(buildah, "from", "scratch").strip()
    try:
        _run(buildah, "add", container, str(rootfs), "/")
        # The official image has its CPython in /usr/local/bin; Debian's stands in for it there.
        for link in ("python", "python3"):
            _run(
                buildah,
                "run",
                "--isolation",
                "chroot",
                container,
                "--",
                "ln",
                "-sf",
                "/usr/bin/python3",
                f"/usr/local/bin/{link}",
            )
        _run(buildah, "config", "--env", "LANG=C.UTF-8", "--cmd", "python3", container)
        _run(buildah, "commit", "--rm", container, name)
    except BaseException:
        subprocess.run([buildah, "rm", container], capture_output=True, check=False)
        raise
    return name


def pause_source() -> Path:
    """pause.c from the pinned k8s.io/kubernetes module (downloaded into the Go module cache if needed)."""
    go = _tool("go")
    tools_dir = binaries.KUBELET.tools_dir
    module = f"k8s.io/kubernetes@{binaries.KUBELET.version}"
    directory = _run(go, "mod", "download", "-json", module, cwd=tools_dir)
    match = re.search(r'"Dir":\s*"([^"]+)"', directory)
    if match is None:
        raise RuntimeError(f"go mod download did not report where {module} is")
    return Path(match.group(1)) / "build/pause/linux/pause.c"


def ensure_pause() -> Path:
    archive = images_dir() / "pause-3.10.tar"
    if archive.exists():
        return archive
    build = images_dir() / "pause-build"
    build.mkdir(exist_ok=True)
    _run(
        _tool("gcc"), "-Os", "-static", "-DVERSION=v3.10-qc", "-o", str(build / "pause"), str(pause_source())
    )
    buildah = _tool("buildah")
    container = _run(buildah, "from", "scratch").strip()
    try:
        _run(buildah, "copy", container, str(build / "pause"), "/pause")
        _run(buildah, "config", "--entrypoint", '["/pause"]', "--user", "65535:65535", container)
        _run(buildah, "commit", "--rm", container, PAUSE_IMAGE)
    except BaseException:
        subprocess.run([buildah, "rm", container], capture_output=True, check=False)
        raise
    _export(PAUSE_IMAGE, archive)
    return archive


def context_digest(root: Path = binaries.REPO_ROOT) -> str:
    """A hash of every file the Dockerfile's build context holds, so an edit means a rebuild."""
    digest = hashlib.sha256()
    for top in CONTEXT_PATHS:
        path = root / top
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts or file.suffix == ".pyc" or ".egg-info" in str(file):
                continue
            digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def ensure_project() -> Path:
    """The project's image, built from the Dockerfile when its build context changed; returns the archive."""
    archive = images_dir() / f"queue-consumer-operator-{context_digest()}.tar"
    if archive.exists():
        return archive
    ensure_base()
    print(f"building {PROJECT_IMAGE} from the Dockerfile with buildah (cached afterwards)", flush=True)
    mounts = [f"--volume={p}:{p}:ro" for p in HOST_BUILD_MOUNTS if Path(p).exists()]
    _run(
        _tool("buildah"),
        "bud",
        "--network",
        "host",
        "--pull=never",
        "--layers",
        *mounts,
        "-t",
        PROJECT_IMAGE,
        "-f",
        "Dockerfile",
        ".",
        cwd=binaries.REPO_ROOT,
    )
    for stale in images_dir().glob("queue-consumer-operator-*.tar"):
        stale.unlink()
    _export(PROJECT_IMAGE, archive)
    return archive


def ensure_demo_worker() -> Path:
    """The demo's worker image (the project's image plus the task module); returns the archive."""
    project = ensure_project()
    digest = hashlib.sha256(project.name.encode())
    for name in DEMO_TASK_FILES:
        digest.update((binaries.REPO_ROOT / name).read_bytes())
    archive = images_dir() / f"qc-demo-worker-{digest.hexdigest()[:16]}.tar"
    if archive.exists():
        return archive
    context = images_dir() / "demo-worker-context"
    shutil.rmtree(context, ignore_errors=True)
    (context / "devstack").mkdir(parents=True)
    for name in DEMO_TASK_FILES:
        shutil.copy(binaries.REPO_ROOT / name, context / name)
    (context / "Containerfile").write_text(DEMO_WORKER_CONTAINERFILE)
    _run(
        _tool("buildah"),
        "bud",
        "--pull=never",
        "--layers",
        "-t",
        DEMO_WORKER_IMAGE,
        "-f",
        "Containerfile",
        ".",
        cwd=context,
    )
    for stale in images_dir().glob("qc-demo-worker-*.tar"):
        stale.unlink()
    _export(DEMO_WORKER_IMAGE, archive)
    return archive


def _export(name: str, archive: Path) -> None:
    partial = archive.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    _run(_tool("buildah"), "push", name, f"docker-archive:{partial}:{name}")
    os.replace(partial, archive)


def ensure_all() -> list[Path]:
    """The archives a node imports: the pause image, the project's image and the demo's worker image."""
    return [ensure_pause(), ensure_project(), ensure_demo_worker()]


if __name__ == "__main__":
    for path in ensure_all():
        print(f"image archive: {path}")
