"""``lookalike``: one command line for the whole pipeline.

lookalike train  ...   learn the encoder self-supervised (training/)
lookalike build  ...   embed a catalog into a product store (index/)
lookalike index  ...   rebuild, check or inspect a product store (index/)
lookalike serve  ...   run the search API and storefront (app/)
lookalike eval   ...   measure retrieval quality of an encoder (training/)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def _serve_parser(add_help: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=add_help)
    parser.add_argument("--host", default=None, help="default: LOOKALIKE_HOST or 127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: LOOKALIKE_PORT or 8000")
    parser.add_argument("--encoder", default=None, help="encoder.pt (default: LOOKALIKE_ENCODER_PATH)")
    parser.add_argument("--store", default=None, help="store directory (default: LOOKALIKE_STORE_DIR)")
    parser.add_argument(
        "--database-url", default=None, help="postgresql://... (default: LOOKALIKE_DATABASE_URL, else SQLite)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server processes on the port (default: LOOKALIKE_WORKERS or 1)",
    )
    parser.add_argument("--log-level", default="info")
    parser.add_argument(
        "--log-format", choices=("json", "text"), default="json", help="json: one object a line"
    )
    return parser


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from app.config import Settings
    from app.logs import configure_logging

    overrides = {
        "encoder_path": args.encoder,
        "store_dir": args.store,
        "database_url": args.database_url,
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
    }
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    log_config = configure_logging(args.log_level, args.log_format)
    if settings.workers > 1:  # each worker builds its app from the settings it is handed
        from app.workers import serve_workers

        serve_workers(settings, args.log_level, log_config)
        return
    from app.main import create_app  # torch and the rest: not in the supervisor of several workers

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        log_config=log_config,
        limit_concurrency=settings.limit_concurrency,  # each connection may hold an upload in memory
    )


def _train(args: argparse.Namespace) -> None:
    from training.train import main

    main(args)


def _build(args: argparse.Namespace) -> None:
    from ops.build import main

    main(args).close()


def _index(args: argparse.Namespace) -> None:
    from ops.maintenance import main

    status = main(args)
    if status:
        sys.exit(status)


def _eval(args: argparse.Namespace) -> None:
    from training.evaluate import main

    main(args)


def _parser() -> argparse.ArgumentParser:
    from ops.build import get_args_parser as build_args
    from training.evaluate import get_args_parser as eval_args
    from training.train import get_args_parser as train_args

    parser = argparse.ArgumentParser(
        prog="lookalike", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, parent, run, text in (
        ("train", train_args(add_help=False), _train, "train the image encoder (SimCLR)"),
        ("build", build_args(add_help=False), _build, "embed a catalog into a product store"),
        ("serve", _serve_parser(), _serve, "serve the search API and the storefront"),
        ("eval", eval_args(add_help=False), _eval, "recall@k and mAP@10 of an encoder"),
    ):
        sub = commands.add_parser(name, parents=[parent], help=text, description=text)
        sub.set_defaults(run=run)
    from ops.maintenance import configure

    index = commands.add_parser("index", help="rebuild, check or inspect a product store")
    configure(index)
    index.set_defaults(run=_index)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    # Before torch loads OpenMP: its idle threads sleep instead of spinning, which on a busy machine
    # cost 9x the CPU of the work (docs/BENCHMARKS.md, "OpenMP threads"); OMP_WAIT_POLICY=active wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] and given[0] in ("build", "train"):  # serve: no gain measured (BENCHMARKS.md)
        from encoder.allocator import tune_allocator

        tune_allocator()  # big blocks stay in the heap: docs/BENCHMARKS.md, "glibc's allocator"
    if given[:1] == ["serve"]:
        from app.memory import limit_arenas

        limit_arenas()  # before anything imports torch, whose threads would fix glibc's arena count
        # the serve options alone: the supervisor of several workers never imports torch (~0.7 GiB)
        text = "serve the search API and the storefront"
        serve = argparse.ArgumentParser(prog="lookalike serve", parents=[_serve_parser()], description=text)
        args = serve.parse_args(given[1:])
        args.command, args.run = "serve", _serve
    else:
        args = _parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError) as exc:  # a user's mistake: say it plainly
        print(f"lookalike {args.command}: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
