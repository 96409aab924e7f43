"""The `rlvr` command: train | config show | list | verify | eval | compare | generate | data | demo | serve."""

from __future__ import annotations

import logging
import sys
from typing import Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from rlvr.config import ConfigError, load_config, to_yaml

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
config_app = typer.Typer(no_args_is_help=True, help="Inspect configurations.")
app.add_typer(config_app, name="config")
console = Console()


def _fail(prefix: str, err: BaseException, code: int = 2) -> typer.Exit:
    """Print ``prefix: message`` on ONE line whatever the terminal (no hard wrap in CI logs or ``| tee``)."""
    console.print(f"[bold red]{prefix}:[/] {escape(' '.join(str(err).split()))}", soft_wrap=True)
    return typer.Exit(code=code)


def _load(path: Optional[str], overrides: list[str]):
    try:
        return load_config(path, overrides)
    except ConfigError as err:
        raise _fail("config error", err) from None


@app.command()
def train(
    config: str = typer.Argument(..., help="YAML config file"),
    overrides: Optional[list[str]] = typer.Argument(None, help="dotted overrides, e.g. trainer.lr=1e-6 rollout.n=16"),
    resume: Optional[str] = typer.Option(None, "--resume", help="checkpoint folder, 'auto' or 'never'"),
) -> None:
    """Train a policy with GRPO (or another preset) as configured."""
    extra = list(overrides or []) + ([f"checkpoint.resume={resume}"] if resume else [])
    _train(_load(config, extra))


@app.command("selfplay")
def selfplay(
    config: str = typer.Argument(..., help="YAML config file (examples/selfplay.yaml)"),
    overrides: Optional[list[str]] = typer.Argument(None, help="dotted overrides, e.g. selfplay.n_solve=8"),
    resume: Optional[str] = typer.Option(None, "--resume", help="checkpoint folder, 'auto' or 'never'"),
) -> None:
    """Absolute Zero self-play: the policy proposes and solves its own code-reasoning tasks (docs/selfplay.md)."""
    extra = ["selfplay.enabled=true", *(overrides or [])] + ([f"checkpoint.resume={resume}"] if resume else [])
    _train(_load(config, extra))


def _train(cfg) -> None:
    from rlvr.data import DataError
    from rlvr.distributed.cluster import DistributedError
    from rlvr.rollout.process import RolloutProcessError
    from rlvr.trainer import TrainingDiverged, train as run_training
    from rlvr.trainer.pipeline import PipelineError

    try:
        result = run_training(cfg)
    except (ConfigError, DataError, FileNotFoundError, FileExistsError, DistributedError) as err:
        raise _fail("error", err) from None
    except (TrainingDiverged, PipelineError, RolloutProcessError) as err:  # a checkpoint to resume from is kept
        raise _fail("training stopped", err, code=3) from None
    if "reward/mean" in result:
        console.print(f"done: step {result['step']}, reward {result['reward/mean']:.3f}, outputs in {cfg.output_dir}")


@config_app.command("show")
def config_show(
    config: Optional[str] = typer.Argument(None, help="YAML config file (defaults when omitted)"),
    overrides: Optional[list[str]] = typer.Argument(None, help="dotted overrides"),
) -> None:
    """Print the fully resolved config (preset values, overrides and defaults filled in)."""
    cfg = _load(config, list(overrides or []))
    typer.echo(to_yaml(cfg), nl=False)


@app.command("list")
def list_registries() -> None:
    """Print every registry: presets, advantage estimators, losses, aggregations, KL estimators, verifiers, sources,
    multi-turn tools."""
    from rlvr import algorithms, data, rewards
    from rlvr.rollout.tools import TOOLS, _register_builtins

    _register_builtins()

    tables = [
        ("algorithm presets", algorithms.PRESETS),
        ("advantage estimators", algorithms.ADVANTAGES),
        ("policy losses", algorithms.POLICY_LOSSES),
        ("loss aggregations", algorithms.AGGREGATIONS),
        ("KL estimators", algorithms.KL_ESTIMATORS),
        ("off-policy token weights (algorithm.guidance.off_weight)", algorithms.OFF_POLICY_WEIGHTS),
        ("verifiers", rewards.VERIFIERS),
        ("batch rewards (trainer process)", rewards.BATCH_REWARDS),
        ("data sources", data.SOURCES),
        ("multi-turn tools", TOOLS),
    ]
    for title, registry in tables:
        table = Table(title=title, title_justify="left", show_header=False)
        for name in registry.names():
            table.add_row(f"[bold]{name}[/]", registry.summary(name))
        console.print(table)


def _register_commands() -> None:
    """The commands that live in their own modules (each a plain typer function)."""
    from rlvr.cli.data import data_app
    from rlvr.cli.demo import demo_command
    from rlvr.cli.eval import compare_command, eval_command
    from rlvr.cli.generate import generate_command
    from rlvr.cli.serve import serve_command
    from rlvr.cli.verify import verify_command

    app.command("verify")(verify_command)
    app.command("eval")(eval_command)
    app.command("compare")(compare_command)
    # extra args: the key=value pairs after --rast (`--rast base_small=A rl_small=B alpha=1.0`)
    app.command("generate", context_settings={"allow_extra_args": True})(generate_command)
    app.command("demo")(demo_command)
    app.command("serve")(serve_command)
    app.add_typer(data_app, name="data")


_register_commands()


def main() -> None:
    if sys.stderr.isatty():
        handler: logging.Handler = RichHandler(console=Console(stderr=True), show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:  # CI logs, `| tee`, a scheduler's log file: one line per record, never wrapped
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    for noisy in ("httpx", "urllib3", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    app()


if __name__ == "__main__":
    sys.exit(main())
