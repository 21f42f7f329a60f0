"""The local server: the Chalice app served over HTTP, on the embedded store, as one process."""
from __future__ import annotations

import os
import threading
from pathlib import Path

from chalice.local import ChaliceRequestHandler, CustomLocalChalice, LocalChalice, LocalDevServer, ThreadedHTTPServer

from devserver.store import EmbeddedStore


class _Handler(ChaliceRequestHandler):
    def send_error(self, code, message=None, explain=None) -> None:
        if code != 501:
            return super().send_error(code, message, explain)
        # Python's HTTP server answers a method it has no handler for (TRACE, QUERY ...) with a
        # 501 HTML page; an API answers 405 in its own error shape.
        body = b'{"error":{"code":"method_not_allowed","message":"This method is not supported."}}'
        self.send_response(405)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _QuietHandler(_Handler):
    def log_message(self, *args) -> None:  # benchmarks: no line per request
        pass


class _Server(ThreadedHTTPServer):
    # Python's HTTPServer queues 5 pending connections; a burst of clients would see resets.
    request_queue_size = 256
    allow_reuse_address = True


class LocalServer:
    def __init__(self, store: EmbeddedStore, http: LocalDevServer, data_dir: Path | None):
        self.store, self.http, self.data_dir = store, http, data_dir
        self.url = f"http://{http.host}:{http.server.server_address[1]}"

    def serve_forever(self) -> None:
        self.http.server.serve_forever()

    def serve_in_thread(self) -> "LocalServer":
        threading.Thread(target=self.http.server.serve_forever, daemon=True).start()
        return self

    def shutdown_from_signal(self) -> None:
        threading.Thread(target=self.http.server.shutdown, daemon=True).start()

    def close(self) -> None:
        self.http.server.shutdown() if threading.current_thread() is not threading.main_thread() else None
        self.http.server.server_close()
        if self.data_dir is not None:
            (self.data_dir / "endpoint").unlink(missing_ok=True)
        self.store.stop()


def serve(host: str, port: int, data_dir: Path | None, fresh: bool = False, announce: bool = False,
          quiet: bool = False) -> LocalServer:
    from chalicelib import config

    store = EmbeddedStore(str(data_dir) if data_dir else None, fresh=fresh)
    endpoint = store.start()
    os.environ.setdefault("STAGE", "local")
    os.environ["DYNAMODB_ENDPOINT"] = endpoint
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("PUBLIC_URL", f"http://{host}:{port}")
    os.environ.setdefault("STANDIN_DELIVERY", "http")  # the stand-in posts events to our webhook
    defaults = config.defaulted()
    settings = config.reload()
    if not settings.is_local:
        store.stop()
        raise SystemExit(f"The local server runs only in a local stage, not {settings.stage!r}.")

    from chalicelib.credits import models

    models.bind(settings)
    models.create_table()
    if data_dir is not None:
        (data_dir / "endpoint").write_text(endpoint)

    from app import app
    from chalice.config import Config

    CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
    app.__class__ = CustomLocalChalice
    chalice_config = Config.create(chalice_app=app, app_name=app.app_name, chalice_stage="local")
    http = LocalDevServer(app, chalice_config, host, port, server_cls=_Server,
                          handler_cls=_QuietHandler if quiet else _Handler)
    server = LocalServer(store, http, data_dir)
    if announce:
        for name, value in defaults.items():
            print(f"{name} is not set; using the local default {value!r}")
        kept = f"kept in {data_dir} (survives restarts; `make run-fresh` starts empty)" if data_dir else "in memory only"
        print(f"Store: {endpoint}, data {kept}")
        print(f"Serving on {server.url}")
        print("Get a token:  .venv/bin/python -m chalicelib.cli token --user alice")
        print(f"Try:          curl -H \"Authorization: Bearer $TOKEN\" {server.url}/v1/me", flush=True)
    return server
