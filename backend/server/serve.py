"""Starting the server: folders, token, the listening socket, the executor, then uvicorn.

The socket is bound here (not by uvicorn) so that `--port 0` works: the address actually bound is
written to ROOT/address before the first request can arrive, which is how scripts and tests find it.
"""
from __future__ import annotations

import ipaddress
import os
import socket
import sys

from exporters.atomic import write_text

from .auth import TokenFileError, load_or_create_token
from .config import ServerConfig


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def make_executor(config: ServerConfig):
    if config.ray_address:
        from .ray_exec import RayExecutor

        executor = RayExecutor(config.ray_address, gpus=config.ray_gpus)
        executor.check_shared_storage(config.root)
        return executor
    from .local_exec import LocalExecutor

    return LocalExecutor()


def serve(config: ServerConfig, access_log: bool = False) -> int:
    """Run until SIGINT/SIGTERM; returns an exit code for the CLI."""
    import uvicorn

    from .app import create_app

    config.make_folders()
    try:
        token, created = load_or_create_token(config.token_file)
    except TokenFileError as exc:
        print(f"shotfield serve: {exc}", file=sys.stderr)
        return 2
    if created:
        print(f"shotfield serve: a new access token is in {config.token_file} (readable only by you).\n"
              f"  Paste it into Blender's Shotfield preferences: {token}", file=sys.stderr)
    try:
        sock = bind(config.host, config.port)
    except OSError as exc:
        print(f"shotfield serve: cannot listen on {config.host}:{config.port} ({exc.strerror or exc}); "
              "choose another --port", file=sys.stderr)
        return 2
    tls = bool(config.ssl_certfile and config.ssl_keyfile)
    if not is_loopback(config.host) and not tls:
        print("shotfield serve: WARNING: listening beyond this machine over plain HTTP; the token and the footage "
              "cross the network unencrypted. Use --ssl-certfile/--ssl-keyfile, a TLS proxy or an SSH tunnel.",
              file=sys.stderr)
    try:
        executor = make_executor(config)
    except Exception as exc:  # no Ray, an unreachable cluster, storage the workers cannot see
        print(f"shotfield serve: {exc}", file=sys.stderr)
        sock.close()
        return 2
    port = sock.getsockname()[1]
    shown = f"[{config.host}]" if ":" in config.host else config.host
    url = f"{'https' if tls else 'http'}://{shown}:{port}"
    write_text(config.address_file, url + "\n")
    app = create_app(config, token, executor)
    server = uvicorn.Server(uvicorn.Config(
        app, log_level="warning", access_log=access_log, lifespan="on", timeout_graceful_shutdown=5,
        ssl_certfile=config.ssl_certfile, ssl_keyfile=config.ssl_keyfile, server_header=False))
    print(f"shotfield serve: listening on {url} ({config.slots} job(s) at a time, state in {config.root}; "
          f"API description at {url}/docs)", file=sys.stderr, flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        try:
            os.unlink(config.address_file)
        except FileNotFoundError:
            pass
    return 0


def serve_command(args) -> int:
    """`shotfield serve` from its parsed options (cli.py)."""
    config = ServerConfig(root=args.root, host=args.host, port=args.port, workers=args.workers,
                          max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), max_jobs=args.max_jobs,
                          rate_limit=args.rate_limit, rate_burst=max(1, int(4 * args.rate_limit)),
                          ray_address=args.ray, ray_gpus=args.ray_gpus,
                          ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile)
    if args.show_token:
        config.make_folders()
        try:
            print(load_or_create_token(config.token_file)[0])
        except TokenFileError as exc:
            print(f"shotfield serve: {exc}", file=sys.stderr)
            return 2
        return 0
    return serve(config, access_log=args.access_log)
