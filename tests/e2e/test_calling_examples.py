"""The examples of docs/calling-xerolink.md run against a running poster (console scripts, as a
calling team meets them), and every code block of the guide is a piece of one of them, so the
guide cannot go stale."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from xero_emulator import EmulatorServer
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_cli.connections import register_emulated_connection
from xerolink_mapper import samples

from tests.fixtures.processes import child_env
from tests.fixtures.services import poster_process

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
GUIDE = ROOT / "docs" / "calling-xerolink.md"


@pytest.fixture
def poster_target(tmp_path: Path, mapper_process_target: str) -> Iterator[str]:
    with poster_process(tmp_path, mapper_process_target) as target:
        yield target


def _connect(target: str, emulator: EmulatorServer, connection_id: str) -> None:
    org = emulator.create_organisation(f"Org of {connection_id}")
    with grpc.insecure_channel(target) as channel:
        register_emulated_connection(
            poster_grpc.PosterServiceStub(channel), connection_id, emulator.base_url, org, samples.demo_context()
        )


def _check(summary: dict[str, Any], connection_id: str, bill_id: int) -> None:
    assert summary["posting"].startswith("postings/")
    assert summary["retry"] == "POST_OUTCOME_DUPLICATE"
    assert summary["state"] == "LINK_STATE_LINKED"
    assert summary["refusal"]["reason_code"] == "EXTENDED_ONLY" and summary["refusal"]["reason"]
    assert summary["link"] == f"connections/{connection_id}/links/client-bill/{bill_id}"
    assert len(summary["xero_ids"]) == 1
    assert summary["preview"] == ["UNLINK_ACTION_UNLINK"]
    assert summary["unlinked"] == 1


def _run(command: list[str], **env: str) -> dict[str, Any]:
    done = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=120, env=child_env(**env), cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


def test_the_python_example_posts_retries_reads_a_refusal_and_unlinks(
    poster_target: str, emulator: EmulatorServer
) -> None:
    _connect(poster_target, emulator, "py-firm")

    summary = _run(
        [sys.executable, str(EXAMPLES / "first_call.py")],
        XEROLINK_POSTER=poster_target,
        XEROLINK_CONNECTION="py-firm",
        XEROLINK_BILL_ID="7101",
    )

    _check(summary, "py-firm", 7101)


def test_the_typescript_example_does_the_same_on_node(
    poster_target: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    tsc = ROOT / "node_modules" / ".bin" / "tsc"
    if not tsc.exists() or not (ROOT / "node_modules" / "@grpc" / "grpc-js").exists():
        pytest.fail("the Node example's packages are missing: run `./dev setup` (npm install)")
    node = shutil.which("node")
    assert node, "node is required for the TypeScript example"
    out = tmp_path / "js"
    compiled = subprocess.run(
        [str(tsc), "-p", str(EXAMPLES), "--outDir", str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    _connect(poster_target, emulator, "ts-firm")

    summary = _run(
        [node, str(out / "first_call.js")],
        XEROLINK_POSTER=poster_target,
        XEROLINK_CONNECTION="ts-firm",
        XEROLINK_BILL_ID="7201",
        XEROLINK_PROTOS=str(ROOT / "protos"),
        NODE_PATH=str(ROOT / "node_modules"),
    )

    _check(summary, "ts-firm", 7201)


def _normalised(text: str) -> str:
    return "\n".join(line.strip() for line in text.strip().splitlines() if line.strip())


def test_every_code_block_of_the_guide_comes_from_an_example() -> None:
    guide = GUIDE.read_text()
    sources = {
        "python": _normalised((EXAMPLES / "first_call.py").read_text()),
        "ts": _normalised((EXAMPLES / "first_call.ts").read_text()),
    }
    blocks = re.findall(r"```(python|ts)\n(.*?)```", guide, flags=re.S)
    assert {language for language, _ in blocks} == set(sources)
    for language, block in blocks:
        assert _normalised(block) in sources[language], f"a {language} block of the guide is not in the example"
