"""``bascule cache purge VS``: empty a virtual service's cache at run time.

The next request for every URL reaches a real server; what the cache held before is never
served again and ages out (docs/reference.md, ``cache``). Needs the ``operate`` permission.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bascule.cli import output
from bascule.cli.session import JsonFlag, Session

app = typer.Typer(help="Services' HTTP caches: purge.", no_args_is_help=True)

Service = Annotated[
    str, typer.Argument(help="A virtual service, or SERVICE/SUB.", show_default=False)
]


@app.command()
def purge(ctx: typer.Context, service: Service, as_json: JsonFlag = False) -> None:
    """Purge a service's cache: the next request for every URL reaches a real server."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        answer = api.purge_cache(service)
    if session.json:
        output.print_json(answer)
    elif answer.get("running"):
        output.console().print(output.text(f"purged the cache of {service}"))
    else:
        output.console().print(
            output.text(
                f"{service}'s cache is not running: the purge holds from its next start", "yellow"
            )
        )
