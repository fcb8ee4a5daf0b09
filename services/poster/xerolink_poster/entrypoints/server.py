"""`xerolink-poster`: serves PosterService and runs the dispatcher until SIGTERM.

Configuration is by environment (see docs/poster.md); --address and --port (on loopback) override
XEROLINK_POSTER_ADDRESS. Another interface than loopback needs XEROLINK_CALLERS_FILE or
XEROLINK_ALLOW_UNAUTHENTICATED=1."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Sequence

from xerolink_common.grpc_server import serve_until_signalled
from xerolink_common.heap import space_young_collections
from xerolink_common.listening import bound, on_loopback
from xerolink_common.logs import configure_logging
from xerolink_common.security import server_security_from_env
from xerolink_common.telemetry import configure_telemetry

from xerolink_poster.entrypoints import bootstrap, config

log = logging.getLogger("xerolink_poster")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="xerolink-poster", description=__doc__)
    parser.add_argument("--address", help="host:port to listen on")
    parser.add_argument("--port", type=int, help="port to listen on, on loopback (127.0.0.1)")
    args = parser.parse_args(argv)
    configure_logging("poster")
    settings = config.load()
    if args.address:
        settings = dataclasses.replace(settings, address=args.address)
    elif args.port is not None:
        settings = dataclasses.replace(settings, address=on_loopback(args.port))
    telemetry = configure_telemetry("xerolink-poster")
    app = bootstrap.start(settings, server_security_from_env("poster"))
    log.info("poster %s listening on %s", settings.instance_id, bound(settings.address, app.port))
    if app.webhooks is not None:
        log.info("receiving Xero webhooks on %s", app.webhooks.url)

    def stop() -> None:
        app.stop()
        telemetry.shutdown()

    # The dispatcher's work in flight is what the collector's full passes were spending on.
    thresholds = space_young_collections()
    log.info("young collections every %d allocations (thresholds %d, %d, %d)", thresholds[0], *thresholds)
    serve_until_signalled(app.server, on_stop=stop)


if __name__ == "__main__":
    main()
