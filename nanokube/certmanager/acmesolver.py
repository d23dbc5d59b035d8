"""`nanokube acmesolver`: the HTTP-01 solver run in the solver pod (cert-manager's acmesolver).

It answers GET /.well-known/acme-challenge/<token> for the challenge's domain with the key
authorization, and 404 for anything else.
"""
from __future__ import annotations

import argparse
import asyncio
import logging

log = logging.getLogger("nanokube.acmesolver")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen-port", type=int, default=8089)
    p.add_argument("--domain", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--key", required=True)


def make_app(domain: str, token: str, key: str):
    from aiohttp import web

    async def handle(request):
        host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") \
            else request.host
        if request.match_info["token"] != token or host.lower() != domain.lower():
            log.info("no challenge for %s%s", request.host, request.path)
            return web.Response(status=404, text="404 page not found\n")
        log.info("served the challenge for %s", domain)
        return web.Response(text=key)

    app = web.Application()
    app.router.add_get("/.well-known/acme-challenge/{token}", handle)
    return app


async def serve(args, stop: asyncio.Event | None = None) -> None:
    from aiohttp import web

    from nanokube import daemon
    stop = daemon.stop_event(stop)
    runner = web.AppRunner(make_app(args.domain, args.token, args.key), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", args.listen_port).start()
    log.info("listening on :%d for %s", args.listen_port, args.domain)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(args) -> int:
    from nanokube import daemon
    daemon.run(serve(args))
    return 0
