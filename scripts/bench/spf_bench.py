#!/usr/bin/env python3
"""SPF policy benchmark: mxguard [spf] vs postfix-policyd-spf-python 3.0.4, same DNS, same load.

Called by scripts/bench/spf.sh (which builds the load generator and installs policyd-spf and
socat); can be run alone with the same arguments. Everything runs in ONE invocation on the same
input so rows compare as ratios (absolute numbers move +-25% between runs on shared machines).

* DNS: scripts/it/testdns.py on 127.0.0.1 serves d0..d63.example.com with the record mix of
  ../shared/bench/README.md (3/8 `ip4 ip4 -all`, 2/8 `a mx include ~all`, 1/8 `?all`, 2/8 no
  record); every other name is NXDOMAIN at once. Its CPU is shown per row.
* mxguard: `[spf]` with policyd-spf's defaults, greylisting off, memory store, `[dns] servers`
  pointed at the test server (hickory's cache in front of it).
* policyd-spf: the Debian package, one process per connection as Postfix spawn(8) runs it,
  emulated with `socat TCP-LISTEN,fork EXEC:policyd-spf,nofork`; pydns pointed at the test
  server by a sitecustomize.py on PYTHONPATH (the system resolv.conf is not touched).
* Load: ../shared/bench/policy_load (closed loop, persistent connections, full Postfix 3.7 RCPT
  requests, `--sasl-frac 0` since SPF is not checked for authenticated clients).
  `pool:N` rows cycle N fixed requests (each with a new instance), so after the first N the
  DNS answers are cached where the server has a cache; `unique` rows give every request a new
  HELO name and sender (HELO lookups miss every cache).
Server CPU is utime+stime(+children) summed over the server's process group; RSS is the peak
of the group's summed VmRSS. Stops only the processes it started, by pid.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from group_measure import cpu_ticks, kib, members  # the /proc process-group walk

CLK_TCK = os.sysconf("SC_CLK_TCK")
HERE = os.path.dirname(os.path.abspath(__file__))


def wait_port(port, proc, secs=60.0):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {secs} s")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def group_stats(pgid):
    """(CPU ticks incl. reaped children, summed VmRSS KiB) of process group `pgid`."""
    ms = members(pgid)
    return (sum(cpu_ticks(f) for _, f in ms),
            sum(kib(f"/proc/{p}/status", "VmRSS:") for p, _ in ms))


class Sampler(threading.Thread):
    def __init__(self, pgid):
        super().__init__(daemon=True)
        self.pgid, self.peak, self.stop = pgid, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, group_stats(self.pgid)[1])
            self.stop.wait(0.2)


class Proc:
    def __init__(self, name, argv, port, log, env=None):
        self.name, self.port = name, port
        self.logf = open(log, "w")
        self.proc = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=env)
        if port:
            wait_port(port, self.proc)

    def stop(self):
        if self.proc.poll() is None:
            # the whole group: socat's per-connection policyd-spf children too
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.logf.close()


def zone_text():
    lines = ["_spf.example.org TXT v=spf1 ip4:203.0.113.0/24 -all"]
    for k in range(64):
        d = f"d{k}.example.com"
        kind = k % 8
        if kind < 3:
            lines.append(f"{d} TXT v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.0/24 -all")
        elif kind < 5:
            lines.append(f"{d} TXT v=spf1 a mx include:_spf.example.org ~all")
            lines.append(f"{d} A 192.0.2.250")
            lines.append(f"{d} MX 10 mx.{d}")
            lines.append(f"mx.{d} A 198.51.100.250")
        elif kind == 5:
            lines.append(f"{d} TXT v=spf1 ?all")
        else:
            lines.append(f"{d} A 192.0.2.251")
    return "\n".join(lines) + "\n"


def load(args, port, conc, mix, seed, requests):
    argv = [args.policy_load, "--target", f"127.0.0.1:{port}", "--concurrency", str(conc),
            "--requests", str(requests), "--duration-s", str(args.duration_s), "--mix", mix,
            "--seed", str(seed), "--sasl-frac", "0"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def measured(args, server, dns, scenario, conc, mix, seed):
    t0, _ = group_stats(server.proc.pid)
    d0, _ = group_stats(dns.proc.pid)
    sampler = Sampler(server.proc.pid)
    sampler.start()
    r = load(args, server.port, conc, mix, seed, args.requests)
    time.sleep(0.5)  # let per-connection children exit and be reaped (their CPU counts)
    sampler.stop.set()
    sampler.join()
    cpu_s = (group_stats(server.proc.pid)[0] - t0) / CLK_TCK
    dns_s = (group_stats(dns.proc.pid)[0] - d0) / CLK_TCK
    el = r["elapsed_s"] or 1.0
    row = {
        "server": server.name, "scenario": scenario, "conc": conc, "mix": mix,
        "ok": r["ok"], "errors": r["errors"], "rps": r["rps"],
        "p50": r["lat_ms"]["p50"], "p99": r["lat_ms"]["p99"], "max": r["lat_ms"]["max"],
        "cpu_pct": 100.0 * cpu_s / el, "cpu_us": 1e6 * cpu_s / r["ok"] if r["ok"] else 0.0,
        "dns_pct": 100.0 * dns_s / el, "gen_pct": r["gen_cpu_pct"],
        "rss_mib": sampler.peak / 1024.0, "actions": r["actions"],
        "first_error": r.get("first_error", ""),
    }
    print(f"  {server.name:11} {scenario:8} c={conc:<3} {row['rps']:8.0f} req/s  "
          f"p50 {row['p50']:.3f} p99 {row['p99']:.3f} ms  {row['cpu_us']:.0f} us/req  "
          f"dns {row['dns_pct']:.0f}%  rss {row['rss_mib']:.1f} MiB  "
          f"{actions_text(row['actions'], row['ok'])}", file=sys.stderr, flush=True)
    return row


def actions_text(actions, ok):
    if not ok:
        return "no answers"
    merged = {}
    for k, v in actions.items():
        k = "PREPEND Received-SPF" if k.startswith("PREPEND Received-SPF") else k.split(" ")[0]
        merged[k] = merged.get(k, 0) + v
    parts = sorted(merged.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {100.0 * v / ok:.0f}%" for k, v in parts)


def rows_for(args, server, dns):
    """Warm rows: pool:N with a seed of their own (policy_load's instance ids are
    `<index>.<seed>`, so a seed shared with an earlier row would replay its instances and
    mxguard's per-message memo would answer them; a new seed means new messages). The first N
    requests of a row fill the DNS caches, the rest find them warm."""
    rows = []
    pool = f"pool:{args.pool}"
    for c in args.conc:
        rows.append(measured(args, server, dns, "warm", c, pool, 100 + c))
    rows.append(measured(args, server, dns, "unique", 8, "unique", 11))
    return rows


def table(rows):
    out = ["| server | scenario | conc | req/s | p50 ms | p99 ms | server CPU % | CPU µs/req | "
           "DNS server CPU % | peak RSS MiB | answers |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        out.append(f"| {r['server']} | {r['scenario']} {r['mix']} | {r['conc']} | {r['rps']:.0f} | "
                   f"{r['p50']:.2f} | {r['p99']:.2f} | {r['cpu_pct']:.0f} | {r['cpu_us']:.0f} | "
                   f"{r['dns_pct']:.0f} | {r['rss_mib']:.0f} | "
                   f"{actions_text(r['actions'], r['ok'])} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policy-load", required=True)
    ap.add_argument("--mxguard", required=True)
    ap.add_argument("--policyd-spf", default="/usr/bin/policyd-spf")
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--duration-s", type=float, default=10)
    ap.add_argument("--conc", default="1,8,32")
    ap.add_argument("--pool", type=int, default=1000)
    ap.add_argument("--json", help="write the raw rows here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    args.conc = [int(c) for c in args.conc.split(",")]
    tmp = tempfile.mkdtemp(prefix="mxguard-spf-bench.")
    procs = []
    rows = []
    try:
        zone = os.path.join(tmp, "bench.zone")
        with open(zone, "w") as f:
            f.write(zone_text())
        dns_port = free_port()
        # the DNS server has no TCP port check of its own: wait_port connects to its TCP side
        dns = Proc("testdns", [sys.executable, os.path.join(HERE, "../it/testdns.py"), zone,
                               str(dns_port), "--ttl", "3600"], dns_port,
                   os.path.join(tmp, "testdns.log"))
        procs.append(dns)

        mx_port = free_port()
        conf = os.path.join(tmp, "mxguard.toml")
        with open(conf, "w") as f:
            f.write(f"""[policy]
listen = ["inet:127.0.0.1:{mx_port}"]
[store]
type = "memory"
[control]
socket = "{tmp}/control.sock"
[greylist]
enabled = false
[log]
level = "warn"
[dns]
servers = ["127.0.0.1:{dns_port}"]
[spf]
hostname = "mx.bench.test"
""")
        mx = Proc("mxguard", [args.mxguard, "serve", "--config", conf], mx_port,
                  os.path.join(tmp, "mxguard.log"))
        procs.append(mx)
        print("mxguard:", file=sys.stderr)
        rows += rows_for(args, mx, dns)
        mx.stop()

        site = os.path.join(tmp, "site")
        os.mkdir(site)
        with open(os.path.join(site, "sitecustomize.py"), "w") as f:
            f.write(f"import DNS\nDNS.defaults['server'] = ['127.0.0.1']\n"
                    f"DNS.defaults['port'] = {dns_port}\n")
        env = dict(os.environ, PYTHONPATH=site)
        sp_port = free_port()
        sp = Proc("policyd-spf", ["socat", f"TCP-LISTEN:{sp_port},bind=127.0.0.1,fork,reuseaddr,backlog=256",
                                  f"EXEC:{args.policyd_spf},nofork"], sp_port,
                  os.path.join(tmp, "policyd-spf.log"), env=env)
        procs.append(sp)
        print("policyd-spf:", file=sys.stderr)
        rows += rows_for(args, sp, dns)
    finally:
        for p in reversed(procs):
            p.stop()
        if not args.keep:
            subprocess.run(["rm", "-rf", tmp], check=False)
        else:
            print(f"kept {tmp}", file=sys.stderr)
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
