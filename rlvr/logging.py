"""Metric sinks: ``metrics.jsonl`` and ``completions.jsonl`` in the run folder, plus TensorBoard / W&B / MLflow.

    logger = MetricsLogger(cfg.output_dir, cfg.logging.backends, project="rlvr", run_name="demo", config=to_dict(cfg))
    logger.truncate_after(resumed_step)          # on resume: forget lines of steps that will be redone
    logger.log(step, {"reward/mean": 0.4, "loss": loss_tensor})
    logger.log_completions(step, [{"prompt": ..., "completion": ..., "reward": 1.0}, ...])
    logger.close()

Files (always written, appended, flushed after every line, so `tail -f` and a crash both see whole lines):
    metrics.jsonl      {"step": 12, "reward/mean": 0.41, "loss": 0.003, ...}           one line per log() call
    completions.jsonl  {"step": 12, "prompt": "...", "completion": "...", ...}          one line per row
Values are written as JSON: tensors / numpy scalars become numbers (or lists), NaN and infinities are written
as Python's json module does (NaN, Infinity), which Python and pandas read back.

Backends get the numeric metrics only (bools, strings and lists are skipped) and are imported only when named:
    tensorboard  torch.utils.tensorboard SummaryWriter in <output_dir>/tensorboard
    wandb        wandb.init(project, name=run_name, config, dir=output_dir); the run id is kept in
                 <output_dir>/wandb_run_id.txt so a resumed run continues the same W&B run
    mlflow       experiment = project, run_name; run id kept in <output_dir>/mlflow_run_id.txt
W&B and MLflow also receive each step's completions as a table.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

BACKENDS = ("tensorboard", "wandb", "mlflow")
METRICS_FILE = "metrics.jsonl"
COMPLETIONS_FILE = "completions.jsonl"


def jsonable(value: Any) -> Any:
    """Tensors / numpy values -> Python numbers or lists; dicts and lists recursively; other objects -> str."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu()
    if hasattr(value, "tolist"):  # tensor / numpy array or scalar (0-dim -> a number)
        return jsonable(value.tolist())
    return str(value)


def scalar(value: Any) -> float | None:
    """The metric as a float for the backends, or None when it is not a single number (bools are skipped)."""
    value = jsonable(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], (int, float)) and not isinstance(value[0], bool):
        return float(value[0])
    return None


def _missing(backend: str) -> ImportError:
    package = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}[backend]
    return ImportError(f"logging backend {backend!r} needs the {package} package: pip install rlvr[{backend}]")


def truncate_jsonl(path: Path, step: int) -> int:
    """Drop lines whose "step" is > ``step`` (and unreadable half-written lines). Returns how many were dropped."""
    if not path.exists():
        return 0
    kept, dropped = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                keep = isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step
            except json.JSONDecodeError:
                keep = False
            if keep:
                kept.append(line if line.endswith("\n") else line + "\n")
            else:
                dropped += 1
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    os.replace(tmp, path)
    return dropped


class MetricsLogger:
    """Writes metrics.jsonl / completions.jsonl and forwards numeric metrics to the requested backends."""

    def __init__(
        self,
        output_dir: str | Path,
        backends: list[str] | None = None,
        project: str = "rlvr",
        run_name: str = "",
        config: dict[str, Any] | None = None,
    ):
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.output_dir / METRICS_FILE
        self.completions_path = self.output_dir / COMPLETIONS_FILE
        self.project = project
        self.run_name = run_name or self.output_dir.resolve().name
        self.config = jsonable(config or {})
        backends = list(backends or [])
        for name in backends:
            if name not in BACKENDS:
                raise ValueError(f"unknown logging backend {name!r}; choices: {', '.join(BACKENDS)}")
        self._tb = self._wandb = self._mlflow = None
        self._files: dict[Path, Any] = {}
        self.backends = []
        for name in dict.fromkeys(backends):  # unique, in order
            getattr(self, f"_start_{name}")()
            self.backends.append(name)
        self.closed = False

    # -- files ------------------------------------------------------------------------------------------------

    def _append(self, path: Path, record: dict[str, Any]) -> None:
        if self.closed:
            raise RuntimeError("MetricsLogger is closed")
        f = self._files.get(path)
        if f is None:
            f = self._files[path] = open(path, "a", encoding="utf-8")
        f.write(json.dumps(record) + "\n")
        f.flush()

    def truncate_after(self, step: int) -> None:
        """On resume from ``step``: drop metrics and completions lines of later steps so none is duplicated."""
        for path in (self.metrics_path, self.completions_path):
            f = self._files.pop(path, None)
            if f is not None:
                f.close()
            truncate_jsonl(path, step)

    # -- logging ----------------------------------------------------------------------------------------------

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Append {"step": step, **metrics} to metrics.jsonl and send the numeric values to the backends."""
        record = {"step": int(step)}
        record.update({str(k): jsonable(v) for k, v in metrics.items() if str(k) != "step"})
        self._append(self.metrics_path, record)
        numbers = {k: x for k, v in record.items() if k != "step" and (x := scalar(v)) is not None}
        if not numbers:
            return
        if self._tb is not None:
            for key, value in numbers.items():
                self._tb.add_scalar(key, value, int(step))
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(numbers, step=int(step))
        if self._mlflow is not None:
            finite = {_mlflow_key(k): v for k, v in numbers.items() if math.isfinite(v)}  # mlflow rejects NaN
            self._mlflow.log_metrics(finite, step=int(step))

    def log_completions(self, step: int, rows: list[dict[str, Any]]) -> None:
        """Append one line {"step": step, **row} per row to completions.jsonl (and a table to W&B / MLflow)."""
        records = [{"step": int(step), **{str(k): jsonable(v) for k, v in row.items() if str(k) != "step"}} for row in rows]
        for record in records:
            self._append(self.completions_path, record)
        if not records:
            return
        columns = list(dict.fromkeys(k for r in records for k in r))
        if self._wandb is not None:
            data = [[_cell(r.get(c)) for c in columns] for r in records]
            self._wandb.log({"completions": self._wandb.Table(columns=columns, data=data)}, step=int(step))
        if self._mlflow is not None:
            table = {c: [_cell(r.get(c)) for r in records] for c in columns}
            self._mlflow.log_table(data=table, artifact_file=f"completions/step_{int(step):07d}.json")

    def close(self) -> None:
        """Close the files and finish the backends (safe to call twice)."""
        if self.closed:
            return
        self.closed = True
        for f in self._files.values():
            f.close()
        self._files.clear()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
        if self._mlflow is not None:
            self._mlflow.end_run()

    def __enter__(self) -> "MetricsLogger":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- backends (imported only when requested) --------------------------------------------------------------

    def _start_tensorboard(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise _missing("tensorboard") from None
        self._tb = SummaryWriter(log_dir=str(self.output_dir / "tensorboard"))

    def _start_wandb(self) -> None:
        try:
            import wandb
        except ImportError:
            raise _missing("wandb") from None
        id_file = self.output_dir / "wandb_run_id.txt"
        run_id = id_file.read_text().strip() if id_file.exists() else wandb.util.generate_id()
        id_file.write_text(run_id)
        wandb.init(
            project=self.project, name=self.run_name, config=self.config, dir=str(self.output_dir), id=run_id, resume="allow"
        )
        self._wandb = wandb

    def _start_mlflow(self) -> None:
        try:
            import mlflow
        except ImportError:
            raise _missing("mlflow") from None
        id_file = self.output_dir / "mlflow_run_id.txt"
        mlflow.set_experiment(self.project)
        if id_file.exists():
            run = mlflow.start_run(run_id=id_file.read_text().strip())
        else:
            run = mlflow.start_run(run_name=self.run_name)
            mlflow.log_params(_flatten(self.config))
            id_file.write_text(run.info.run_id)
        self._mlflow = mlflow


def _cell(value: Any) -> Any:
    """A table cell: numbers and strings as they are, anything else as compact JSON."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value)


def _mlflow_key(key: str) -> str:
    """MLflow allows alphanumerics, _ - . space / in metric names; replace anything else with _."""
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in key)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """{"a": {"b": 1}} -> {"a.b": "1"}; values cut to MLflow's 500-character limit for params."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:500]
    return flat
