"""Checks that run before a training run loads anything, and the lock that keeps one run per output folder.

- ``check_model_folder``: a local ``model.path`` must be a folder with a valid config.json, complete weights and
  tokenizer files; the missing or damaged file is named (hub ids pass through untouched).
- ``check_output_writable``: output_dir and output_dir/checkpoints are folders this process can write.
- ``OutputLock``: ``output_dir/.lock`` held with ``fcntl.flock`` (released by the kernel when the process dies, so
  a stale lock is taken over) and holding "pid host start-time" for the message a second run prints.
- ``remove_stale_tmp``: ``checkpoints/step_*.tmp`` left by a run killed mid-save are removed (under the lock).
- ``guarded`` wraps ``train()``: the model folder and output folders are checked before anything loads (nothing
  created), and ``claim_output`` (called where train() starts writing) creates, locks and cleans output_dir; the
  lock is released when train() returns or raises.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import socket
import struct
import tempfile
import threading
import time
from pathlib import Path

from rlvr.config import ConfigError

log = logging.getLogger("rlvr")

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model",
                   "sentencepiece.bpe.model", "tokenizer.tiktoken")
LOCK_FILE = ".lock"


def safetensors_problem(file: Path) -> str | None:
    """Why ``file`` is not a complete safetensors file (header unreadable, or size != header's data end), or None."""
    try:
        size = file.stat().st_size
        with open(file, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return f"truncated ({size} bytes, no header)"
            (n,) = struct.unpack("<Q", head)
            if n > size - 8 or n > 100_000_000:
                return f"corrupt header (header length {n} > file size {size})"
            header = json.loads(f.read(n))
    except OSError as err:
        return f"unreadable ({err.strerror or err})"
    except (ValueError, UnicodeDecodeError):
        return "corrupt header (not valid JSON)"
    if not isinstance(header, dict):
        return "corrupt header (not a JSON object)"
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (TypeError, KeyError, IndexError, ValueError):
        return "corrupt header (bad data_offsets)"
    if size != 8 + n + end:
        return f"truncated or padded: {size} bytes, the header says {8 + n + end}"
    return None


def check_model_folder(path: str | Path, key: str = "model.path", tokenizer: bool = True) -> None:
    """Raise (naming the file and the config ``key``) unless ``path`` is a loadable local HF model folder (with
    tokenizer files unless ``tokenizer`` is False: a critic uses the policy's tokenizer)."""
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(f"{key}: {folder} is a file; it must be a model folder (config.json, weights, tokenizer files)")
    config = folder / "config.json"
    if not config.is_file() and (folder / "adapter_config.json").is_file():
        config = folder / "adapter_config.json"  # a peft adapter folder (transformers loads its base model)
    if not config.is_file():
        raise FileNotFoundError(f"{key}: {folder} has no config.json (not an HF model folder)")
    try:
        json.loads(config.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ConfigError(f"{key}: {config} is not valid JSON ({err})") from None
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
            raise ConfigError(f"{key}: {index} is not a valid shard index ({err})") from None
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise FileNotFoundError(f"{key}: {folder} lacks weight shard(s) {', '.join(missing)} listed in {index.name}")
    weights = sorted(folder.glob("*.safetensors"))
    if not weights and not any((folder / n).is_file() for n in ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        raise FileNotFoundError(f"{key}: {folder} has no weights (*.safetensors or pytorch_model.bin)")
    for file in weights:
        problem = safetensors_problem(file)
        if problem:
            raise ConfigError(f"{key}: {file} is damaged: {problem}")
    if tokenizer and not any((folder / n).is_file() for n in TOKENIZER_FILES) and not _remote_tokenizer(folder):
        raise FileNotFoundError(f"{key}: {folder} has no tokenizer files (one of {', '.join(TOKENIZER_FILES)})")


def _remote_tokenizer(folder: Path) -> bool:
    """A tokenizer_config.json naming custom code (trust_remote_code) may need none of the usual files."""
    try:
        return "auto_map" in json.loads((folder / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return False


def check_output_writable(out: Path, create: bool = True) -> None:
    """Every folder the run writes (output_dir, output_dir/checkpoints) is, or can be made, a folder this process
    can write. ``create=False`` checks without creating anything (the nearest existing parent must be writable)."""
    for folder in (out, out / "checkpoints"):
        if folder.exists() and not folder.is_dir():
            raise FileExistsError(f"output_dir: {folder} is a file; the run needs a folder there")
    if not out.exists():
        parent = next((p for p in out.absolute().parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            raise FileExistsError(f"output_dir: cannot create {out}: {parent} is a file")
        if not create:
            if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"output_dir: cannot create {out} (no write permission in {parent})")
            return
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"output_dir: cannot create {out} ({err.strerror or err})") from None
    for folder in (out, out / "checkpoints"):
        if folder.is_dir():
            try:
                tempfile.TemporaryFile(dir=folder).close()
            except OSError as err:
                raise ConfigError(f"output_dir: cannot write in {folder} ({err.strerror or err})") from None


class OutputLock:
    """An exclusive lock on an output folder for as long as a run uses it."""

    def __init__(self, out: Path):
        import fcntl

        self.path = out / LOCK_FILE
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = self._read() or "an unknown process"
            os.close(self.fd)
            raise FileExistsError(
                f"output_dir: {out} is in use by another run ({holder}); wait for it to end or use another "
                f"output_dir (lock: {self.path})") from None
        stale = self._read()
        if stale:
            log.info("taking over the stale lock %s (%s, no longer running)", self.path, stale)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                           f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)

    def _read(self) -> str:
        try:
            return os.pread(self.fd, 200, 0).decode(errors="replace").strip()
        except OSError:
            return ""

    def release(self) -> None:
        """Empty the file and drop the lock (the file stays: unlinking it would race with a run opening it)."""
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
        finally:
            os.close(self.fd)  # closing the last descriptor releases the flock
            self.fd = None


def remove_stale_tmp(out: Path) -> None:
    root = out / "checkpoints"
    for tmp in sorted(root.glob("step_*.tmp")) if root.is_dir() else []:
        shutil.rmtree(tmp, ignore_errors=True)
        log.info("removed %s: an incomplete checkpoint left by an interrupted run", tmp)


_held = threading.local()


def claim_output(out: Path) -> None:
    """Create output_dir, lock it and remove stale ``*.tmp`` checkpoints: call where ``train()`` starts writing.
    The lock is released when the enclosing ``guarded`` call returns (or, outside one, when the process ends)."""
    check_output_writable(out)
    lock = OutputLock(out)
    getattr(_held, "locks", []).append(lock)
    remove_stale_tmp(out)


def guarded(train):
    """``train(cfg)`` after the model folder and the output folders are checked (nothing created); the output
    lock that ``claim_output`` takes inside it is released on the way out."""

    @functools.wraps(train)
    def run(cfg, *args, **kwargs):
        from rlvr.trainer.policy import model_path

        model_path(cfg.model.path)  # checks a local folder; a hub id passes through
        if cfg.critic.path:
            model_path(cfg.critic.path, "critic.path")
        check_output_writable(Path(cfg.output_dir), create=False)
        outer = getattr(_held, "locks", None)
        _held.locks = []
        try:
            return train(cfg, *args, **kwargs)
        finally:
            for lock in _held.locks:
                lock.release()
            _held.locks = outer if outer is not None else []

    return run
