#!/usr/bin/env python3
"""`make soak`: `palisade serve` under load for a long time (an hour by default), with hostile
policies, configuration reloads and the attacks of issue 13 going on, on 127.0.0.1.

usage: soak.py PALISADE POLICY_DIR [SECONDS]

- steady load: wrk with 16 connections on pod-security (restricted), the bench review;
- hostile traffic: requests to policies that spin to their deadline, eat memory, trap and flood
  their answer, and to a group of them, from a few threads;
- reloads: the configuration is rewritten every 20 s (a setting toggled), and a module that
  does not load comes and goes;
- attacks every 30 s: idle TCP connections, cut TLS handshakes, cut and quiet HTTP/2 prefaces
  (plain-text probes listener), bodies announced and never sent, oversized bodies, malformed
  reviews.

Every 10 s it samples the server's RSS, open descriptors and threads, and prints them; at the end
a summary: requests, non-2xx answers and socket errors of the steady load, answers of the hostile
and attack traffic by status, RSS and descriptors at start, end and peak. Exit 1 when the server
died, the steady load saw a non-2xx answer, or descriptors or RSS kept growing (end > 2x start
after the warm-up).
"""

import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REVIEW = ROOT / "tests/benches/pod-create-review.json"
PORT = int(os.environ.get("SOAK_PORT", "18743"))
PROBES = PORT + 1


def config(policy_dir: Path, broken: bool, level: str) -> str:
    hostile = policy_dir / "hostile.wasm"
    pod = policy_dir / "pod_security.wasm"
    text = f"""listen: 127.0.0.1:{PORT}
tls: {{cert: tls/tls.crt, key: tls/tls.key}}
probes: {{listen: 127.0.0.1:{PROBES}}}
limits: {{requestTimeout: 2s, idleTimeout: 10s, maxConnectionsPerClient: 512, instanceIdleTimeout: 30s}}
policies:
  - {{id: pod-security, module: {pod}, settings: {{level: {level}, version: latest}}}}
  - {{id: spin, module: {hostile}, settings: {{behaviour: loop}}, timeout: 300ms, failurePolicy: Ignore, maxConcurrency: 2}}
  - {{id: hoard, module: {hostile}, settings: {{behaviour: grow-memory}}, timeout: 500ms, memoryMib: 32, maxConcurrency: 2}}
  - {{id: trap, module: {hostile}, settings: {{behaviour: trap}}}}
  - {{id: flood, module: {hostile}, settings: {{behaviour: flood}}, failurePolicy: Ignore}}
"""
    if broken:
        text += f"  - {{id: broken, module: {policy_dir / 'missing.wasm'}}}\n"
    text += "groups:\n  - {id: all, expression: pod-security && spin && trap}\n"
    return text


class Soak:
    def __init__(self, palisade: str, policy_dir: Path, seconds: int):
        self.palisade = palisade
        self.policy_dir = policy_dir
        self.seconds = seconds
        self.work = Path(tempfile.mkdtemp(prefix="palisade-soak-"))
        self.stop = threading.Event()
        self.answers = Counter()
        self.lock = threading.Lock()
        self.samples = []
        self.review = REVIEW.read_bytes()
        self.tls = ssl.create_default_context()
        self.tls.check_hostname = False
        self.tls.verify_mode = ssl.CERT_NONE

    def count(self, what: str):
        with self.lock:
            self.answers[what] += 1

    def post(self, path: str, body: bytes, label: str):
        request = urllib.request.Request(
            f"https://127.0.0.1:{PORT}{path}", data=body,
            headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.tls) as answer:
                answer.read()
                self.count(f"{label} {answer.status}")
        except urllib.error.HTTPError as e:
            self.count(f"{label} {e.code}")
        except Exception as e:  # noqa: BLE001 - counted, the soak goes on
            self.count(f"{label} error: {type(e).__name__}")

    def hostile_traffic(self):
        paths = ["/validate/spin", "/validate/hoard", "/validate/trap", "/validate/flood",
                 "/validate/all", "/mutate/pod-security", "/validate/broken"]
        i = 0
        while not self.stop.is_set():
            path = paths[i % len(paths)]
            self.post(path, self.review, f"hostile {path}")
            i += 1

    def reloads(self):
        flip = False
        while not self.stop.wait(20):
            flip = not flip
            text = config(self.policy_dir, broken=flip, level="baseline" if flip else "restricted")
            tmp = self.work / ".palisade.yaml.tmp"
            tmp.write_text(text)
            tmp.rename(self.work / "palisade.yaml")
            self.count("reload written")

    def attack(self):
        held = []
        # Idle TCP connections, cut TLS handshakes, quiet and cut HTTP/2 prefaces.
        for _ in range(50):
            try:
                s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
                held.append(s)
                t = socket.create_connection(("127.0.0.1", PORT), timeout=5)
                t.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
                held.append(t)
                u = socket.create_connection(("127.0.0.1", PROBES), timeout=5)
                u.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
                held.append(u)
                v = socket.create_connection(("127.0.0.1", PROBES), timeout=5)
                v.sendall(b"PRI * HTTP/2.0\r\n")
                held.append(v)
            except OSError:
                self.count("attack connection refused")
        # Bodies announced and not sent, on TLS.
        for _ in range(20):
            try:
                raw = socket.create_connection(("127.0.0.1", PORT), timeout=5)
                s = self.tls.wrap_socket(raw)
                s.sendall(b"POST /validate/pod-security HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n{")
                held.append(s)
            except OSError:
                self.count("attack connection refused")
        # Oversized and malformed bodies.
        self.post("/validate/pod-security", b"x" * (4 << 20), "attack oversized")
        self.post("/validate/pod-security", b'{"request": [', "attack malformed")
        self.post("/validate/pod-security", self.review.replace(b'"uid"', b'"uid", "uid"', 1),
                  "attack duplicate key")
        self.stop.wait(15)
        for s in held:
            try:
                s.close()
            except OSError:
                pass

    def attacks(self):
        while not self.stop.wait(30):
            self.attack()
            self.count("attack round")

    def sample(self, pid: int, started: float):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) // 1024
            threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except (OSError, AttributeError):
            return None
        row = {"t": round(time.time() - started), "rss_mib": rss, "fds": fds, "threads": threads}
        self.samples.append(row)
        print(f"  t={row['t']:>5}s  rss={rss:>5} MiB  fds={fds:>5}  threads={threads}", flush=True)
        return row

    def run(self) -> int:
        subprocess.run([self.palisade, "cert", "--out", str(self.work / "tls")],
                       check=True, capture_output=True)
        (self.work / "palisade.yaml").write_text(config(self.policy_dir, False, "restricted"))
        (self.work / "post.lua").write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f'local f = assert(io.open("{REVIEW}", "r"))\nwrk.body = f:read("*a")\nf:close()\n')
        log = open(self.work / "server.log", "w")
        env = dict(os.environ, PALISADE_LOG="warn", PALISADE_CACHE_DIR=str(self.work / "cache"))
        server = subprocess.Popen(
            [self.palisade, "serve", "--config", str(self.work / "palisade.yaml"),
             "--watch-interval-ms", "1000"], stdout=log, stderr=log, env=env)
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{PROBES}/readyz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            print("the server did not become ready")
            server.kill()
            return 1
        print(f"soak: {self.seconds}s on 127.0.0.1:{PORT} (probes {PROBES}), work dir {self.work}")
        started = time.time()
        wrk = subprocess.Popen(
            ["wrk", "-t1", "-c16", f"-d{self.seconds}s", "-s", str(self.work / "post.lua"),
             f"https://127.0.0.1:{PORT}/validate/pod-security"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threads = [threading.Thread(target=f, daemon=True)
                   for f in (self.hostile_traffic, self.hostile_traffic, self.reloads, self.attacks)]
        for t in threads:
            t.start()
        while wrk.poll() is None and server.poll() is None:
            self.sample(server.pid, started)
            time.sleep(10)
        self.stop.set()
        out = wrk.communicate()[0] if wrk.poll() is not None else ""
        # The end state once the last attack round has let go of its connections (it holds them
        # 15 s): a sample taken in the middle of one would read as growth.
        time.sleep(20)
        self.sample(server.pid, started)
        alive = server.poll() is None
        if alive:
            server.terminate()
            server.wait(timeout=30)
        requests = re.search(r"(\d+) requests in", out)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        socket_errors = re.search(r"Socket errors: (.*)", out)
        print("\nsteady load (wrk, 16 connections, pod-security restricted):")
        print("  " + "\n  ".join(line for line in out.splitlines()
                                 if re.search(r"requests in|Requests/sec|Latency|Non-2xx|Socket", line)))
        print("\nhostile, reload and attack traffic:")
        for key, n in sorted(self.answers.items()):
            print(f"  {key}: {n}")
        warm = [s for s in self.samples if s["t"] >= 60] or self.samples
        first, last = warm[0], self.samples[-1]
        peak_rss = max(s["rss_mib"] for s in self.samples)
        peak_fds = max(s["fds"] for s in self.samples)
        print(f"\nRSS: {first['rss_mib']} MiB after warm-up, {last['rss_mib']} MiB at the end (settled), peak {peak_rss} MiB")
        print(f"descriptors: {first['fds']} after warm-up, {last['fds']} at the end (settled), peak {peak_fds}")
        failures = []
        if not alive:
            failures.append(f"the server exited with {server.returncode}")
        if non2xx:
            failures.append(f"{non2xx.group(1)} non-2xx answers under steady load")
        if not requests:
            failures.append("wrk reported no requests")
        if last["fds"] > 2 * first["fds"] + 20:
            failures.append("descriptors kept growing")
        if last["rss_mib"] > 2 * first["rss_mib"] + 64:
            failures.append("RSS kept growing")
        summary = {
            "seconds": self.seconds,
            "steady_requests": int(requests.group(1)) if requests else 0,
            "steady_non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "steady_socket_errors": socket_errors.group(1) if socket_errors else "none",
            "rss_mib": [first["rss_mib"], last["rss_mib"], peak_rss],
            "fds": [first["fds"], last["fds"], peak_fds],
            "failures": failures,
        }
        print("\n" + json.dumps(summary))
        return 1 if failures else 0


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 3600
    return Soak(sys.argv[1], Path(sys.argv[2]).resolve(), seconds).run()


if __name__ == "__main__":
    sys.exit(main())
