"""`guesthub simulator`: serve the local Mews simulator (``--properties N`` hotels and, with
``--portfolio-enterprises K``, a portfolio; it prints each one's enterprises and AccessToken);
`guesthub simulator mutate`: change its data (which sends webhooks and WebSocket messages)."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from typing import TYPE_CHECKING, Annotated

import httpx
import typer

from shared.cli.errors import CommandError, ExitCode, network_reason

if TYPE_CHECKING:
    from shared.simulator.tenants import Property

app = typer.Typer(invoke_without_command=True, no_args_is_help=False)


@app.callback()
def serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8765,
    seed: Annotated[int, typer.Option(help="Seed of the generated data.")] = 7,
    customers: Annotated[int, typer.Option(help="Customers to generate per property.")] = 1000,
    enterprises: Annotated[int, typer.Option(min=1, max=3)] = 1,
    properties: Annotated[
        int, typer.Option(min=1, help="Independent properties, each its own chain and token.")
    ] = 1,
    portfolio_enterprises: Annotated[
        int, typer.Option(min=0, help="Enterprises of one extra portfolio token (0: none).")
    ] = 0,
    latency_ms: Annotated[float, typer.Option(help="Base latency per response.")] = 0.0,
    per_item_ms: Annotated[float, typer.Option(help="Extra latency per returned item.")] = 0.0,
    rate_limit: Annotated[int, typer.Option(help="Requests per window per AccessToken.")] = 200,
    rate_window: Annotated[float, typer.Option(help="Sliding window, seconds.")] = 30.0,
    no_rate_limit: Annotated[
        bool, typer.Option("--no-rate-limit", help="Lift the request limit.")
    ] = False,
    webhook_url: Annotated[
        str | None, typer.Option(help="General Webhook target (with ?Token=).")
    ] = None,
    webhook_delay: Annotated[float, typer.Option(help="Seconds before a webhook is sent.")] = 0.0,
    duplicates: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.5,
            help="Share of people planted twice (and as many look-alikes); truth at"
            " /_admin/duplicates.",
        ),
    ] = 0.0,
) -> None:
    """Serve the simulator until interrupted."""
    if ctx.invoked_subcommand is not None:
        return
    from shared.simulator.running import running_simulator
    from shared.simulator.server import SimulatorConfig

    config = SimulatorConfig(
        seed=seed,
        customers=customers,
        enterprises=enterprises,
        properties=properties,
        portfolio_enterprises=portfolio_enterprises,
        latency_ms=latency_ms,
        per_item_ms=per_item_ms,
        rate_limit=None if no_rate_limit else rate_limit,
        rate_window_seconds=rate_window,
        webhook_url=webhook_url,
        webhook_delay_seconds=webhook_delay,
        duplicates=duplicates,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with running_simulator(config, port=port) as simulator:
        typer.echo(
            f"Mews simulator on {simulator.url} (WebSocket {simulator.ws_url}), "
            f"{customers} customers per property, {len(simulator.properties)} properties,"
            f" seed {seed}",
            err=True,
        )
        _echo_properties(simulator.properties, config.client_tokens[0])
        typer.echo(f"MEWS_PLATFORM_URL={simulator.url}", err=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


def _echo_properties(properties: list[Property], client_token: str) -> None:
    """What a user needs to connect each property by hand (test tokens, printed plainly)."""
    typer.echo(f"ClientToken={client_token}", err=True)
    for item in properties:
        kind = "portfolio" if item.is_portfolio else "property"
        line = (
            f"{kind} {item.index} {item.name!r}: EnterpriseIds={','.join(item.enterprise_ids)}"
            f" ChainId={item.chain_id} IntegrationId={item.integration_id}"
        )
        if item.portfolio_enterprise_id:
            line += f" PortfolioEnterpriseId={item.portfolio_enterprise_id}"
        typer.echo(f"{line} AccessToken={item.access_token}", err=True)


@app.command("mutate")
def mutate_command(
    url: Annotated[str, typer.Option(help="The simulator's base URL.")] = "http://127.0.0.1:8765",
    customers_added: int = 0,
    customers_updated: int = 0,
    reservations_updated: int = 0,
    resources_updated: int = 0,
    target: Annotated[
        str | None,
        typer.Option(
            "--property",
            help="A property's index, one of its enterprise ids, or 'all' (default 0).",
        ),
    ] = None,
) -> None:
    """Change data in a running simulator, as staff working in Mews would."""
    body: dict[str, object] = {
        "customers_added": customers_added,
        "customers_updated": customers_updated,
        "reservations_updated": reservations_updated,
        "resources_updated": resources_updated,
    }
    if target is not None:
        body["property"] = target
    try:
        response = httpx.post(url.rstrip("/") + "/_admin/mutate", json=body, timeout=30)
    except httpx.TransportError as exc:
        raise CommandError(
            f"cannot reach the simulator at {url}: {network_reason(exc)}; start it with"
            " `guesthub simulator`",
            ExitCode.MEWS,
        ) from exc
    if response.status_code == 400:
        raise CommandError(str(response.json().get("error")), ExitCode.USAGE)
    response.raise_for_status()
    typer.echo(json.dumps({k: len(v) for k, v in response.json().items()}))
