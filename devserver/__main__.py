"""`make run`: the API on http://127.0.0.1:8000 (PORT overrides) over the embedded store.

Data is kept in .data/ (DATA_DIR overrides) and survives restarts; --fresh starts empty.
Not deployed: Chalice packages app.py and chalicelib/ only."""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from devserver.server import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devserver", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--data-dir", default=os.environ.get("DATA_DIR", ".data"))
    parser.add_argument("--fresh", action="store_true", help="start from an empty store")
    parser.add_argument("--memory", action="store_true", help="keep nothing on disk")
    args = parser.parse_args(argv)
    data_dir = None if args.memory else Path(args.data_dir).resolve()
    server = serve(args.host, args.port, data_dir, fresh=args.fresh, announce=True)
    signal.signal(signal.SIGTERM, lambda *_: server.shutdown_from_signal())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
