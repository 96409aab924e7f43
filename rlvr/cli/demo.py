"""`rlvr demo`: train a tiny reasoning model on the CPU with GRPO and show it learning (see docs/demo.md).

Registered by rlvr.cli with ``app.command("demo")(demo_command)``.
"""

from __future__ import annotations

from typing import Optional

import typer


def demo_command(
    steps: Optional[int] = typer.Option(None, "--steps", help="GRPO steps (default: examples/demo.yaml's trainer.steps)"),
    output_dir: str = typer.Option("runs/demo", "--output-dir", help="where metrics, plots and the report go"),
    rebuild: bool = typer.Option(False, "--rebuild", help="rebuild the cached base model and data"),
    quick: bool = typer.Option(False, "--quick", help="a smaller model and a handful of steps (a smoke test)"),
    config: Optional[str] = typer.Option(None, "--config", help="a YAML config instead of examples/demo.yaml"),
    seed: int = typer.Option(0, "--seed", help="seed of the base model's warm-up and of GRPO (each seed caches its own base)"),
    overrides: Optional[list[str]] = typer.Argument(None, help="dotted overrides, e.g. trainer.lr=1e-4"),
) -> None:
    """Build a weak tiny char-level Llama, evaluate it, train it with GRPO, evaluate again, write a report."""
    from rlvr.config import ConfigError
    from rlvr.demo.run import run_demo

    try:
        run_demo(steps=steps, output_dir=output_dir, rebuild=rebuild, quick=quick, config_path=config,
                 seed=seed, overrides=list(overrides or []))
    except (ConfigError, FileNotFoundError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=2) from None


if __name__ == "__main__":  # python -m rlvr.cli.demo
    typer.run(demo_command)
