"""``python -m aletheia.webui``: what ``aletheia ui --background`` runs detached."""

from __future__ import annotations

import argparse
from pathlib import Path

from aletheia.cloud import config
from aletheia.webui import server


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser(prog="python -m aletheia.webui")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--stack-dir", type=Path, default=None)
    args = parser.parse_args()
    overrides = {"stack_dir": str(args.stack_dir)} if args.stack_dir else None
    httpd = server.make_server(config.resolve(overrides), args.host, args.port)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
