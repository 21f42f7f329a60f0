"""schemathesis against the running local server: no 5xx, and every answer true to the published
OpenAPI document (status codes, content types, bodies). Bounded examples, fixed seed. Run through
its command line: its pytest plugin does not load under pytest 9."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_no_5xx_and_answers_match_the_schema(server):
    st = Path(sys.executable).with_name("schemathesis")
    out = subprocess.run(
        [str(st), "run", f"{server.url}/v1/openapi.json", "--checks", CHECKS, "--max-examples", "10",
         "--seed", "1", "-H", f"Authorization: Bearer {server.token('fuzz-user')}", "--no-color"],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", out.stdout)
    assert generated and generated.group(1) == generated.group(2) and int(generated.group(1)) > 300, out.stdout[-2000:]
