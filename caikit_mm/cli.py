"""The ``caikit-mm`` command line.

Subcommands print JSON on standard output. A failure prints one line naming what
failed on standard error and exits with status 1; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__

log = logging.getLogger(__name__)

Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    """Register a subcommand handler under ``name``."""

    def register(handler: Command) -> Command:
        COMMANDS[name] = handler
        return handler

    return register


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="caikit-mm", description="Train, find and load models with caikit_mm."
    )
    parser.add_argument(
        "--config", metavar="FILE", help="YAML file merged over the configuration"
    )
    parser.add_argument(
        "--debug", action="store_true", help="log DEBUG lines and show tracebacks"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log INFO lines to standard error"
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    load = sub.add_parser("load", help="load a model, and optionally run it")
    load.add_argument("path", help="model folder, archive or URL")
    load.add_argument("--finder", help="finder instance name (default: default)")
    load.add_argument("--initializer", help="initializer instance name")
    load.add_argument(
        "--run",
        metavar="JSON",
        help="call the model's run() with this JSON object as keyword arguments",
    )

    find = sub.add_parser("find", help="show what would load, without loading")
    find.add_argument("path", help="model folder, archive or URL")
    find.add_argument("--finder", help="finder instance name (default: default)")
    find.add_argument("--initializer", help="initializer instance name")
    find.add_argument(
        "--explain",
        action="store_true",
        help="also name the module class and backend that would initialize it",
    )

    sub.add_parser("plugins", help="list every type of each role and its source")

    config = sub.add_parser("config", help="print the effective configuration")
    config.add_argument(
        "--validate", action="store_true", help="only validate, print 'valid'"
    )
    _add_extra_commands(sub)
    return parser


def _add_extra_commands(sub: Any) -> None:
    from . import cli_train

    cli_train.add_parser(sub)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("caikit-mm: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        # One line, but all of it: the fix is often at the end of the message,
        # and YAML errors span several lines.
        message = " ".join(line.strip() for line in str(exc).splitlines())
        print(
            f"caikit-mm {args.command}: {type(exc).__name__}: {message}",
            file=sys.stderr,
        )
        return 1


def _configure_logging(args: argparse.Namespace) -> None:
    if args.debug:
        level: int | None = logging.DEBUG
    elif args.verbose:
        level = logging.INFO
    else:
        level = None
    if level is not None:
        logging.basicConfig(
            level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )


def make_manager(args: argparse.Namespace) -> Any:
    """Build the manager for a command, with ``--config`` when given."""
    from .manager import ModelManager

    return ModelManager(args.config) if args.config else ModelManager()


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON; objects JSON cannot encode print as text."""
    print(json.dumps(data, indent=2, ensure_ascii=False, default=_jsonable))


def _jsonable(value: Any) -> Any:
    to_list = getattr(value, "tolist", None)
    if callable(to_list):
        return to_list()
    return str(value)


@command("load")
def _load(args: argparse.Namespace) -> int:
    run_kwargs = _parse_run(args.run)
    manager = make_manager(args)
    model = manager.load(args.path, finder=args.finder, initializer=args.initializer)
    result: dict[str, Any] = {
        "path": args.path,
        "module_id": getattr(model, "MODULE_ID", None),
        "model": type(model).__qualname__,
    }
    if run_kwargs is not None:
        result["result"] = model.run(**run_kwargs)
    print_json(result)
    return 0


def _parse_run(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--run is not valid JSON ({exc}): {text!r:.80}") from None
    if not isinstance(value, dict):
        raise ValueError(
            f"--run must be a JSON object of keyword arguments, got {text!r:.80}; "
            "for example --run '{\"inputs\": [[1, 2]]}'."
        )
    return value


@command("find")
def _find(args: argparse.Namespace) -> int:
    manager = make_manager(args)
    finder = manager.get_finder(args.finder)
    module_config = finder.find_model(args.path)
    result: dict[str, Any] = {
        "path": args.path,
        "finder": {"name": finder.instance_name, "type": finder.name},
        "model_path": module_config.model_path,
        "module_config": module_config.to_dict(),
    }
    if args.explain:
        result["initializer"] = manager.get_initializer(args.initializer).describe(
            module_config
        )
    print_json(result)
    return 0


@command("plugins")
def _plugins(args: argparse.Namespace) -> int:
    from .model_management import REGISTRIES
    from .modules import BACKENDS, MODULE_REGISTRY
    from .registry import PluginRegistry

    registries: dict[str, PluginRegistry[Any]] = {
        f"{role}s": registry for role, registry in REGISTRIES.items()
    }
    registries["backends"] = BACKENDS
    result: dict[str, Any] = {
        role: [
            {"type": i.name, "source": i.source, "target": i.target, "error": i.error}
            for i in registry.describe()
        ]
        for role, registry in registries.items()
    }
    result["module_libraries"] = MODULE_REGISTRY.load_libraries()
    print_json(result)
    return 0


@command("config")
def _config(args: argparse.Namespace) -> int:
    manager = make_manager(args)
    if args.validate:
        print("valid: " + ", ".join(manager.config.sources))
    else:
        print_json(manager.config.data)
    return 0
