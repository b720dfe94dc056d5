"""``fer-stream``: the daemon and its tools. Each subcommand lives with the code it drives."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

import fer_stream

#: subcommand -> (module, help). Each module has ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS = {
    "run": ("fer_stream.supervisor.command", "run the daemon on a camera YAML"),
    "demo": ("fer_stream.supervisor.demo", "run the daemon on the built-in demo (no camera needed)"),
    "check-config": ("fer_stream.config.command", "validate a camera YAML without running it"),
    "predict": ("fer_stream.predict", "find faces in images and videos and print their expressions"),
    "replay": ("fer_stream.replay.command", "run video files through the camera pipeline and print the alerts"),
    "calibrate": ("fer_stream.replay.calibrate", "measure alert rules on labelled footage and recommend thresholds"),
    "alerts": ("fer_stream.alerts.subscriber", "follow (and replay) alerts from Redis"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fer-stream",
        description="Multi-camera facial-expression stream processor: cameras -> faces -> expressions -> alerts on Redis, "
        "metrics for Prometheus. Start with `fer-stream demo`, then `fer-stream check-config YOUR.yaml`.",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    parser.add_argument("--version", action="version", version=f"%(prog)s {fer_stream.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(command)
        command.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
