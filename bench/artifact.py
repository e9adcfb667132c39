"""`make build`'s output laid out as Lambda runs it, for the cold-start probes.

Each function's code goes where /var/task would be, the layer's python/ where /opt/python would be, and
the packages the Lambda runtime itself provides (boto3, botocore and their dependencies) where
/var/runtime would be, compiled as the runtime image ships them. Two copies: the artifact as built, and
the same with every `__pycache__` the artifact ships removed. Both are read-only and the probes run with
PYTHONDONTWRITEBYTECODE=1, so what has no bytecode is compiled at every start, as on Lambda.

The layer is built for arm64. On another machine its compiled extensions (charset_normalizer's and
wrapt's) would not load, and their pure-Python fallbacks would be measured instead, so there the layer
is rebuilt by the same Makefile for this machine's platform; every other file of it is checked to be
byte for byte the artifact's.
"""

from __future__ import annotations

import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from bench import environment
from devstack.template import resources

BUILD = environment.ROOT / ".aws-sam" / "build"
# What the Lambda Python runtime has (the Makefile's RUNTIME_PACKAGES, which the layer leaves out).
RUNTIME_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six")
# The probe and what it imports, and a stand-in for the runtime's snapshot_restore_py.
HARNESS = {
    "bench/__init__.py": "bench/__init__.py",
    "bench/probe.py": "bench/probe.py",
    "bench/bare.py": "bench/bare.py",
    "bench/snapshot_restore_py.py": "snapshot_restore_py.py",
}
LAMBDA_MACHINES = {"aarch64", "arm64"}


class ArtifactError(RuntimeError):
    """The artifact is missing or not what the benchmark expects."""


@dataclass(frozen=True)
class Artifact:
    root: Path

    def task(self, function: str) -> Path:
        return self.root / "task" / function

    @property
    def layer(self) -> Path:
        return self.root / "opt" / "python"

    def sys_path(self, function: str, runtime: Path) -> list[str]:
        """Lambda's order: the function's code, the layer, then the runtime's own packages."""
        return [str(self.task(function)), str(self.layer), str(runtime)]


@dataclass(frozen=True)
class Layout:
    top: Path
    with_bytecode: Artifact
    without_bytecode: Artifact
    runtime: Path
    harness: Path
    layer_note: str

    def files(self) -> int:
        """How many files there are, to show that the probes wrote none."""
        return sum(len(files) for _, _, files in os.walk(self.top))


def functions() -> dict[str, str]:
    """Each function's directory name under functions/ (as the probes name it), to its build directory."""
    built = {}
    for logical_id, resource in resources("AWS::Serverless::Function").items():
        built[Path(str(resource["Properties"]["CodeUri"])).name] = logical_id
    return built


@dataclass(frozen=True)
class Size:
    zipped: int
    unzipped: int


def size(tree: Path, *, bytecode: bool) -> Size:
    """`tree` as `zip -qr -9` would pack it, with or without its bytecode, and its files' total size."""
    files = [p for p in sorted(tree.rglob("*")) if p.is_file() and (bytecode or "__pycache__" not in p.parts)]
    with tempfile.TemporaryFile() as file:
        with zipfile.ZipFile(file, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            for path in files:
                archive.write(path, path.relative_to(tree))
        return Size(file.tell(), sum(p.stat().st_size for p in files))


def built_trees() -> dict[str, Path]:
    """The layer and each function as `make build` left them, by logical id."""
    ids = [*resources("AWS::Serverless::LayerVersion"), *resources("AWS::Serverless::Function")]
    return {logical_id: BUILD / logical_id for logical_id in ids}


@contextmanager
def laid_out(names: tuple[str, ...]) -> Iterator[Layout]:
    top = Path(tempfile.mkdtemp(prefix="bench-artifact-"))
    try:
        yield _lay_out(top, names)
    finally:
        for directory, _, _ in os.walk(top):
            os.chmod(directory, 0o700)  # noqa: PTH101 - writable again, to be removed
        shutil.rmtree(top, ignore_errors=True)


def _lay_out(top: Path, names: tuple[str, ...]) -> Layout:
    built = functions()
    layer_id = next(iter(resources("AWS::Serverless::LayerVersion")))
    missing = [BUILD / built[name] for name in names if not (BUILD / built[name]).is_dir()]
    if not (BUILD / layer_id / "python").is_dir() or missing:
        raise ArtifactError(f"no build in {BUILD}: run `make build` first")
    with_bytecode = Artifact(top / "artifact" / "with-bytecode")
    for name in names:
        shutil.copytree(BUILD / built[name], with_bytecode.task(name))
    layer_note = _copy_layer(BUILD / layer_id / "python", with_bytecode.layer, top / "native-layer")
    without_bytecode = Artifact(top / "artifact" / "without-bytecode")
    shutil.copytree(with_bytecode.root, without_bytecode.root, ignore=shutil.ignore_patterns("__pycache__"))
    runtime = _runtime(top / "runtime")
    harness = top / "harness"
    for source, target in HARNESS.items():
        (harness / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(environment.ROOT / source, harness / target)
    _compile(harness)
    for tree in (top / "artifact", runtime, harness):
        _read_only(tree)
    return Layout(top, with_bytecode, without_bytecode, runtime, harness, layer_note)


def _copy_layer(built: Path, target: Path, scratch: Path) -> str:
    if platform.machine() in LAMBDA_MACHINES:
        shutil.copytree(built, target)
        return "the built layer as is"
    native = f"{platform.machine()}-manylinux2014"
    make = shutil.which("make")
    if make is None:
        raise ArtifactError("make is not on PATH")
    made = subprocess.run(
        [
            make,
            "--no-print-directory",
            "-s",
            "-C",
            "layers/shared",
            "build-SharedLayer",
            f"ARTIFACTS_DIR={scratch}",
            f"PLATFORM={native}",
            f"PYTHON={sys.executable}",
            f"UV={Path(sys.executable).with_name('uv')}",
        ],
        cwd=environment.ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        raise ArtifactError(f"the layer could not be built for {native}:\n{made.stderr[-2000:]}")
    same, extensions = _compare(built, scratch / "python")
    shutil.copytree(scratch / "python", target)
    return (
        f"rebuilt by its Makefile for {native}, this machine, so that its {extensions} compiled "
        f"extension modules load; its {same} other files are the arm64 build's (sources byte for byte)"
    )


def _compare(built: Path, native: Path) -> tuple[int, int]:
    """How many files the two builds share, and how many compiled extensions the artifact has; raises if
    any other file differs. Bytecode is compared by name: marshal writes sets in hash-seeded order."""

    def platform_specific(path: Path) -> bool:
        metadata_file = path.parent.name.endswith(".dist-info") and path.name in ("RECORD", "WHEEL")
        return path.suffix == ".so" or metadata_file

    def files(root: Path) -> dict[Path, Path]:
        return {p.relative_to(root): p for p in root.rglob("*") if p.is_file() and not platform_specific(p)}

    ours, theirs = files(built), files(native)
    differ = sorted(str(p) for p in ours.keys() ^ theirs.keys())
    differ += sorted(
        str(p)
        for p in ours.keys() & theirs.keys()
        if p.suffix != ".pyc" and ours[p].read_bytes() != theirs[p].read_bytes()
    )
    if differ:
        raise ArtifactError(f"the layer built for this machine differs from the artifact's: {differ[:10]}")
    return len(ours), sum(1 for _ in built.rglob("*.so"))


def _runtime(target: Path) -> Path:
    """The Lambda runtime's own packages, from this environment, compiled."""
    for name in RUNTIME_DISTRIBUTIONS:
        distribution = metadata.distribution(name)
        for file in distribution.files or ():
            if file.suffix == ".pyc" or ".dist-info" in file.parts[0] or file.parts[0] in ("..", "bin"):
                continue
            source = Path(str(distribution.locate_file(file)))
            (target / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target / file)
    _compile(target)
    return target


def _compile(tree: Path) -> None:
    """As the Makefiles compile what they ship (in a child process: this one runs the servers' threads)."""
    compiled = subprocess.run(
        [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            str(tree),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if compiled.returncode != 0:
        raise ArtifactError(f"{tree} does not compile:\n{compiled.stdout[-2000:]}")


def _read_only(tree: Path) -> None:
    """As /var/task and /opt are on Lambda (root ignores the bits; PYTHONDONTWRITEBYTECODE does the rest)."""
    for directory, _, files in os.walk(tree):
        for name in files:
            path = Path(directory) / name
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        Path(directory).chmod(Path(directory).stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
