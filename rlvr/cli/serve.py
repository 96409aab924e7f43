"""`rlvr serve MODEL`: serve a local model behind an OpenAI-compatible HTTP API (rlvr.serve), e.g. as a judge."""

from __future__ import annotations

import typer

from rlvr.cli.eval import _fail


def serve_command(
    model: str = typer.Argument(..., help="a local Hugging Face model folder (or a run's checkpoint folder)"),
    port: int = typer.Option(8000, "--port", help="TCP port; 0 picks a free one (printed)"),
    host: str = typer.Option("127.0.0.1", "--host", help="interface to listen on (0.0.0.0: every interface)"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N"),
    dtype: str = typer.Option("float32", "--dtype", help="float32 | bfloat16 | float16"),
    name: str = typer.Option("", "--name", help="the model id clients send and /v1/models lists (default: the "
                             "folder name)"),
    max_tokens: int = typer.Option(256, "--max-tokens", help="new tokens when a request gives no max_tokens"),
) -> None:
    """Serve MODEL on /v1/chat/completions and /v1/completions (OpenAI-compatible; one generation at a time)."""
    from pathlib import Path

    from rlvr.serve import ModelServer, make_server

    if dtype not in ("float32", "bfloat16", "float16"):
        _fail(f"--dtype {dtype!r} is not float32, bfloat16 or float16")
    if not Path(model).expanduser().is_dir():
        _fail(f"model folder not found: {model}")
    try:
        backend = ModelServer(model, device=device, dtype=dtype, name=name, max_tokens=max_tokens)
        server = make_server(backend, host, port)
    except (OSError, ValueError) as err:
        _fail(f"{type(err).__name__}: {err}")
    bound = server.server_address
    typer.echo(f"serving {backend.name} on http://{bound[0]}:{bound[1]}/v1 (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
