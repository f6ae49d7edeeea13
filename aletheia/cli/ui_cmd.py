"""``aletheia ui``: serve the web dashboard on localhost (no Node needed);
``aletheia ui deploy``: publish it on Firebase Hosting."""

from __future__ import annotations

import subprocess
import sys
from typing import Annotated

import typer

from aletheia.cli._common import StackDirOption, console, exit_on_error, settings
from aletheia.webui import server

DEFAULT_PORT = 8765

app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=False,
    help="Serve the dashboard against the local stack (or the cloud project) until Ctrl-C; "
    "`ui deploy` publishes it on Firebase Hosting.",
)


@app.command()
@exit_on_error
def deploy(
    site: Annotated[
        str | None,
        typer.Option(
            envvar="ALETHEIA_HOSTING_SITE",
            help="Firebase Hosting site (`terraform output -raw hosting_site`; "
            "default <cloud project>-aletheia).",
        ),
    ] = None,
) -> None:
    """Upload the built dashboard with the cloud project's config to Firebase Hosting."""
    from aletheia.webui import hosting

    url = hosting.deploy(settings(), site)
    console.print(f"Dashboard deployed: {url}")


@app.callback()
@exit_on_error
def ui(
    ctx: typer.Context,
    port: Annotated[
        int, typer.Option(help="Port to serve on (0: any free port).", min=0, max=65535)
    ] = DEFAULT_PORT,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    background: Annotated[
        bool,
        typer.Option(
            "--background", help="Serve from a detached process, print its URL and pid, return."
        ),
    ] = False,
    stack_dir: StackDirOption = None,
) -> None:
    """Serve the dashboard against the local stack (or the cloud project) until Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    resolved = settings(stack_dir=stack_dir)
    httpd = server.make_server(resolved, host, port)  # fails here, not in the child
    url = server.url_of(httpd)
    if background:
        httpd.server_close()
        args = [sys.executable, "-m", "aletheia.webui", "--host", host, "--port", str(port)]
        if stack_dir is not None:
            args += ["--stack-dir", str(stack_dir)]
        child = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        console.print(f"Dashboard: {url}  (pid {child.pid}; stop it with `kill {child.pid}`)")
        return
    console.print(f"Dashboard: {url}  (Ctrl-C to stop)")
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
