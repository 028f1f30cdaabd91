"""Cold start: from launching `python -m assistant serve` to the first answered question through
the app's HTTP API, split into process start → port open → first answer.

The index (bundled corpus, default model) is built beforehand in a temporary data dir with
`python -m assistant build` (timed separately, not part of the cold start); the model cache
is the same dir, so the rebuilt model is already on disk as in production.

    python bench/bench_cold_start.py [--quick] [--runs N] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import DEFAULT_WORK, ROOT, load_average, machine_line, print_table, setup_offline

QUESTION = "Comment financer un projet d'ESS en milieu rural ?"


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    """True when something accepts connections on 127.0.0.1:`port`."""
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def one_run(
    data_dir: Path, env: dict[str, str], timeout: float = 300.0
) -> tuple[float, float, float]:
    """(port open, client ready, first answer) in seconds since the process was launched."""
    from gradio_client import Client

    port = free_port()
    log = (data_dir / f"serve-{port}.log").open("w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant", "serve", "--data-dir", str(data_dir), "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        while not port_open(port):
            if proc.poll() is not None or time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"serve did not open port {port}; see {log.name}")
            time.sleep(0.05)
        t_port = time.perf_counter() - t0
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        t_client = time.perf_counter() - t0
        answer = client.predict(QUESTION, "[]", api_name="/ask")
        t_answer = time.perf_counter() - t0
        if '"error"' in str(answer)[:200]:
            raise RuntimeError(f"the API answered with an error: {answer[:300]}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    return t_port, t_client, t_answer


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run instead of three")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument(
        "--precision", default="fp32,int8", help="ESS_ASSISTANT_PRECISION values to compare"
    )
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK)
    args = parser.parse_args(argv)
    setup_offline()
    runs = args.runs or (1 if args.quick else 3)
    data_dir = args.work_dir / "cold-start"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    print(machine_line())
    for precision in args.precision.split(","):
        env["ESS_ASSISTANT_PRECISION"] = precision
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "assistant", "build", "--data-dir", str(data_dir)],
                       cwd=ROOT, env=env, check=True, capture_output=True)  # fmt: skip
        build_s = time.perf_counter() - t0
        results = [one_run(data_dir, env) for _ in range(runs)]
        print(f"\nESS_ASSISTANT_PRECISION={precision}: index prepared beforehand in {build_s:.1f} s "
              f"(`python -m assistant build`, bundled corpus; the model export included the "
              f"first time); {runs} cold start(s), load average now {load_average()}")  # fmt: skip
        rows = []
        for i, (port, client, answer) in enumerate(results, 1):
            rows.append((f"run {i}", port, client - port, answer - client, answer))
        if runs > 1:
            med = [statistics.median(r[k] for r in rows) for k in range(1, 5)]
            rows.append(("median", *med))
        print_table(
            ["run", "launch → port open s", "→ client ready s", "→ first answer s", "total s"],
            rows,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
