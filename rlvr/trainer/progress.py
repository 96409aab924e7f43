"""A rich progress bar for training steps, with ETA and the latest reward / accuracy."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class StepProgress:
    def __init__(self, total: int, start: int = 0, enabled: bool = True, description: str = "train"):
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"), disable=not enabled,
        )
        self.task = self.progress.add_task(description, total=total, completed=start, info="")

    def __enter__(self) -> "StepProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def advance(self, step: int, metrics: dict) -> None:
        info = f"reward {metrics.get('reward/mean', float('nan')):.3f}  acc {metrics.get('accuracy', float('nan')):.3f}"
        if "eval/pass@1" in metrics:
            info += f"  eval {metrics['eval/pass@1']:.3f}"
        self.progress.update(self.task, completed=step, info=info)
