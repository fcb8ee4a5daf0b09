"""bench/layer_samples.py: each sample counted in the layer of its innermost frame, as py-spy's
raw format names files."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench import layer_samples

RAW = "\n".join(
    [
        # The innermost frame decides: SQLAlchemy called from xerolink is SQLAlchemy's time.
        "_run (xerolink_poster/service_layer/dispatch/tenant_loop.py:88);"
        "do_execute (sqlalchemy/engine/default.py:943) 6",
        "_run (xerolink_poster/service_layer/dispatch/tenant_loop.py:88);"
        "apply_batch (xerolink_poster/service_layer/outcomes.py:10) 3",
        "dumps (xerolink_poster/adapters/xero_json.py:17);_write (xerolink_poster/adapters/xero_json.py:30) 2",
        "raw_decode (json/decoder.py:353) 2",
        "read (httpcore/_backends/sync.py:126) 1",
        "wait (threading.py:327) 1",
        "garbled line without a count",
        "",
    ]
)


def test_each_sample_is_counted_in_the_layer_of_its_innermost_frame() -> None:
    assert layer_samples.shares(RAW) == {
        "samples": 15.0,
        "sqlalchemy": 0.4,
        "json": 0.267,
        "xerolink": 0.2,
        "http_client": 0.067,
        "other": 0.067,
    }
    assert layer_samples.shares("") == {"samples": 0.0}


@pytest.mark.skipif(sys.platform != "linux", reason="py-spy attaches through Linux's ptrace")
def test_a_running_python_process_is_sampled_or_the_reason_is_said() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "import json\nwhile True: json.dumps(list(range(1000)))"])
    try:
        with layer_samples.sampled(busy.pid, 5) as sampling:
            time.sleep(1.5)
    finally:
        busy.kill()
        busy.wait()
    if sampling.figures:
        assert sampling.figures["samples"] > 0 and sampling.figures.get("json", 0) > 0.5, sampling.figures
    else:  # no permission to attach (a container without ptrace): said, not hidden
        assert sampling.problem and os.geteuid() != 0, sampling.problem
