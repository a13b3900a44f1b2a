"""Sandbox throughput: records/s and requests/s with rate limits off, server in its own process.

    python benchmarks/bench_sandbox.py [--records 200000] [--clients 2] [--out benchmarks/results_sandbox.json]

Measures, against a fresh state dir:
  klaviyo_bulk_new      POST /klaviyo/api/profile-bulk-import-jobs, 10,000 new profiles per job, into a list
  klaviyo_bulk_update   the same profiles again (all matched by email -> updates)
  mailchimp_batch       POST /mailchimp/3.0/lists/{id}, 500 members per call
  meta_users            POST /meta/v25.0/{id}/users, 10,000 hashed rows per call
  small_requests        GET /klaviyo/api/lists (requests/s, the per-request overhead)
Bodies are serialised before timing so the figures are the server's, not the client's. Besides
wall-clock rates it reports records per CPU-second of the server process, which stays meaningful
when the machine is shared (the wall-clock rate is then bounded by what the server gets).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"
KL = {"Authorization": f"Klaviyo-API-Key {TOKEN}", "revision": "2026-07-15",
      "Content-Type": "application/vnd.api+json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(state: Path, port: int) -> subprocess.Popen:
    code = ("from pathlib import Path; from syncs.sandbox.server import serve; "
            f"serve(port={port}, state_dir=Path({str(state)!r}), rate_limits=False)")
    env = dict(os.environ, LIFELINE_SANDBOX_TOKEN=TOKEN, LIFELINE_SANDBOX_FAULTS="")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/_sandbox/health", timeout=1)
            return proc
        except requests.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("sandbox did not start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the server process (Linux /proc): robust when the machine is shared."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(proc: subprocess.Popen, records: int, requests_n: int, fn) -> dict:
    cpu = cpu_seconds(proc.pid)
    secs = fn()
    cpu = cpu_seconds(proc.pid) - cpu
    return {"seconds": round(secs, 2), "records_per_s": round(records / secs),
            "requests_per_s": round(requests_n / secs, 1), "server_cpu_s": round(cpu, 2),
            "records_per_server_cpu_s": round(records / cpu) if cpu else None}


def timed_posts(url: str, bodies: list[bytes], clients: int, **kwargs) -> float:
    def post(body: bytes) -> None:
        with requests.Session() as s:
            r = s.post(url, data=body, **kwargs)
            r.raise_for_status()
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(post, bodies))
    return time.perf_counter() - start


def klaviyo_bodies(n: int, list_id: str, version: int) -> list[bytes]:
    out = []
    for start in range(0, n, 10_000):
        profiles = [{"type": "profile", "attributes": {"email": f"user{i}@example.com", "external_id": f"p{i}",
                                                       "first_name": f"F{version}", "properties": {"tier": "gold"}}}
                    for i in range(start, min(n, start + 10_000))]
        out.append(json.dumps({"data": {"type": "profile-bulk-import-job", "attributes": {
            "profiles": {"data": profiles}}, "relationships": {"lists": {"data": [{"type": "list", "id": list_id}]}}}}
        ).encode())
    return out


def run(records: int, clients: int) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    results: dict = {"records": records, "clients": clients, "cpus": os.cpu_count(),
                     "load_average_at_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(Path(tmp), port)
        try:
            list_id = requests.post(f"{base}/klaviyo/api/lists", headers=KL, json={
                "data": {"type": "list", "attributes": {"name": "bench"}}}).json()["data"]["id"]
            for name, version in (("klaviyo_bulk_new", 1), ("klaviyo_bulk_update", 2)):
                bodies = klaviyo_bodies(records, list_id, version)
                results[name] = measure(proc, records, len(bodies), lambda: timed_posts(
                    f"{base}/klaviyo/api/profile-bulk-import-jobs", bodies, clients, headers=KL))
            mc = [json.dumps({"members": [{"email_address": f"user{i}@example.com", "status": "subscribed"}
                                          for i in range(s, min(records, s + 500))], "update_existing": True}).encode()
                  for s in range(0, records, 500)]
            results["mailchimp_batch"] = measure(proc, records, len(mc), lambda: timed_posts(
                f"{base}/mailchimp/3.0/lists/bench", mc, clients, auth=("x", TOKEN),
                headers={"Content-Type": "application/json"}))
            hashes = [hashlib.sha256(f"user{i}@example.com".encode()).hexdigest() for i in range(records)]
            meta = [f"access_token={TOKEN}&payload=".encode() + requests.utils.quote(json.dumps(
                {"schema": "EMAIL_SHA256", "data": hashes[s:s + 10_000]})).encode() for s in range(0, records, 10_000)]
            results["meta_users"] = measure(proc, records, len(meta), lambda: timed_posts(
                f"{base}/meta/v25.0/1/users", meta, clients,
                headers={"Content-Type": "application/x-www-form-urlencoded"}))
            n = 2000

            def small() -> float:
                with requests.Session() as session:
                    start = time.perf_counter()
                    for _ in range(n):
                        session.get(f"{base}/klaviyo/api/lists", headers=KL).raise_for_status()
                    return time.perf_counter() - start
            results["small_requests"] = measure(proc, n, n, small)
        finally:
            proc.terminate()
            proc.wait(10)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results_sandbox.json")
    args = parser.parse_args()
    results = run(args.records, args.clients)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
