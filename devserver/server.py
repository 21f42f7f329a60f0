"""The local server: the Chalice app served over HTTP, on the embedded store, as one process."""
from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

from chalice.local import ChaliceRequestHandler, CustomLocalChalice, LocalChalice, LocalDevServer, ThreadedHTTPServer

from devserver.store import EmbeddedStore


WEB = Path(__file__).resolve().parents[1] / "web"
# The Subscription and credits page (web/): static files, so any static host can serve them deployed.
PAGES = {"/": ("index.html", "text/html; charset=utf-8"), "/index.html": ("index.html", "text/html; charset=utf-8"),
         "/studio.js": ("studio.js", "text/javascript; charset=utf-8"),
         "/studio.css": ("studio.css", "text/css; charset=utf-8"),
         "/config.js": ("config.js", "text/javascript; charset=utf-8")}
USER_ID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


class _Handler(ChaliceRequestHandler):
    def do_GET(self) -> None:
        page = PAGES.get(self.path.split("?", 1)[0])
        if page is None:
            return self._generic_handle()
        self._reply(200, (WEB / page[0]).read_bytes(), page[1], {"Cache-Control": "no-cache"})

    def do_POST(self) -> None:
        if self.path != "/dev/token":
            return self._generic_handle()
        # The page's sign-in on the local server only: this route is not part of the app, so no
        # deployed stage has it. It mints what `python -m chalicelib.cli token` prints.
        from chalicelib.auth import mint_dev_token

        _, body = self._parse_payload()
        try:
            user = json.loads(body or b"{}").get("user_id", "")
        except (ValueError, AttributeError):
            user = ""
        if not isinstance(user, str) or not USER_ID.fullmatch(user):
            error = {"code": "invalid_request", "message": "user_id: 1 to 64 letters, digits or _ . @ -"}
            return self._reply(400, json.dumps({"error": error}).encode(), "application/json")
        self._reply(200, json.dumps({"token": mint_dev_token(user)}).encode(), "application/json")

    def _reply(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

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
        print(f"The Subscription and credits page: {server.url}/ (sign in as any person)")
        print("Get a token:  .venv/bin/python -m chalicelib.cli token --user alice")
        print(f"Try:          curl -H \"Authorization: Bearer $TOKEN\" {server.url}/v1/me", flush=True)
    return server
