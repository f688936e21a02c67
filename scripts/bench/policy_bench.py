#!/usr/bin/env python3
"""Policy-service benchmark: mxguard greylisting vs postgrey 1.37 vs a do-nothing server.

Called by scripts/bench/policy.sh (which builds the tools and installs postgrey); can be run
alone with the same arguments. Everything runs in ONE invocation on the same input so the rows
can be compared as ratios (absolute numbers move +-25% between runs on shared machines).

Load comes from ../shared/bench/policy_load (closed loop, one persistent connection per
concurrent client, full Postfix 3.7 RCPT requests). Scenarios per server and concurrency:
  * first-seen: `--mix unique`, every request a new triplet (greylisting answers
    DEFER_IF_PERMIT); the do-nothing server runs only this one (its answer never changes);
  * repeat: `--mix pool:N` over N triplets that were seen twice before the row (the first pass
    once the delay is over adds X-Greylist), so every measured request is a known triplet
    (DUNNO).
Server CPU is utime+stime of the server process (all threads, from /proc/PID/stat) over the
row; peak RSS is the highest VmRSS sampled every 0.1 s during the row.

A last step fills mxguard with --fill unique triplets and reports its RSS and state size.

Prints a Markdown table (and writes the raw rows as JSON next to it when --json is given).
Stops only the processes it started, by pid.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def wait_port(port, secs=60.0, proc=None):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
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


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3): utime/stime are fields 14/15
    return int(fields[11]) + int(fields[12])


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class RssSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, status_kib(self.pid, "VmRSS"))
            except OSError:
                return
            self.stop.wait(0.1)


class Server:
    def __init__(self, name, argv, port, log, env=None):
        self.name, self.port = name, port
        self.logf = open(log, "w")
        # own session so a Ctrl-C of the bench does not hit it first; stopped by pid below
        self.proc = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=env)
        wait_port(port, 90, self.proc)

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


def load(args, port, conc, mix, seed, requests=None, duration=None):
    argv = [args.policy_load, "--target", f"127.0.0.1:{port}", "--concurrency", str(conc),
            "--requests", str(requests or args.requests),
            "--duration-s", str(duration or args.duration_s), "--mix", mix, "--seed", str(seed)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def measured(args, server, scenario, conc, mix, seed):
    t0 = cpu_ticks(server.pid)
    sampler = RssSampler(server.pid)
    sampler.start()
    r = load(args, server.port, conc, mix, seed)
    sampler.stop.set()
    sampler.join()
    cpu_s = (cpu_ticks(server.pid) - t0) / CLK_TCK
    row = {
        "server": server.name, "scenario": scenario, "conc": conc, "mix": mix,
        "ok": r["ok"], "errors": r["errors"], "rps": r["rps"], "elapsed_s": r["elapsed_s"],
        "p50": r["lat_ms"]["p50"], "p99": r["lat_ms"]["p99"], "max": r["lat_ms"]["max"],
        "gen_cpu_pct": r["gen_cpu_pct"],
        "cpu_pct": 100.0 * cpu_s / r["elapsed_s"] if r["elapsed_s"] else 0.0,
        "cpu_us_per_req": 1e6 * cpu_s / r["ok"] if r["ok"] else 0.0,
        "rss_mib": sampler.peak / 1024.0,
        "actions": r["actions"], "first_error": r.get("first_error", ""),
    }
    print(f"  {server.name:9} {scenario:10} c={conc:<3} {row['rps']:9.0f} req/s  "
          f"p50 {row['p50']:.3f} ms  p99 {row['p99']:.3f} ms  "
          f"{row['cpu_us_per_req']:.0f} us/req  rss {row['rss_mib']:.1f} MiB  "
          f"{actions_text(row['actions'], row['ok'])}", file=sys.stderr, flush=True)
    return row


def actions_text(actions, ok):
    if not ok:
        return "no answers"
    parts = sorted(actions.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {100.0 * v / ok:.0f}%" for k, v in parts)


def greylist_rows(args, server, delay_s, seed_base):
    """First-seen rows, then warm a pool twice (defer, then the header pass) and measure it."""
    rows = []
    for i, c in enumerate(args.conc):
        rows.append(measured(args, server, "first-seen", c, "unique", seed_base + i))
    pool = f"pool:{args.pool}"
    pool_seed = seed_base + 100
    # no time cap on the warm-up: every slot must be seen (a slow peer needs seconds)
    warm = load(args, server.port, 8, pool, pool_seed, requests=args.pool, duration=600)
    time.sleep(delay_s + 1.2)
    warm2 = load(args, server.port, 8, pool, pool_seed, requests=args.pool, duration=600)
    print(f"  {server.name:9} warm-up    {actions_text(warm['actions'], warm['ok'])}, then "
          f"{actions_text(warm2['actions'], warm2['ok'])}", file=sys.stderr, flush=True)
    for c in args.conc:
        rows.append(measured(args, server, "repeat", c, pool, pool_seed))
    return rows


def dir_mib(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total / (1 << 20)


def mxguard_config(path, port, state, delay_s):
    wl_c = "/etc/postgrey/whitelist_clients"
    wl_r = "/etc/postgrey/whitelist_recipients"
    lists = ""
    if os.path.exists(wl_c) and os.path.exists(wl_r):
        # the same whitelist files postgrey reads by default (Debian's, as installed)
        lists = f'whitelist_clients = ["{wl_c}"]\nwhitelist_recipients = ["{wl_r}"]\n'
    with open(path, "w") as f:
        f.write(f"""[policy]
listen = ["inet:127.0.0.1:{port}"]
default_action = "DUNNO"

[store]
type = "embedded"
path = "{state}"

[greylist]
enabled = true
delay = "{delay_s}s"
hostname = "bench.example.test"
{lists}
[control]
socket = "{state}/control.sock"

[log]
level = "warn"
""")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policy-load", required=True)
    ap.add_argument("--dunno-server", required=True)
    ap.add_argument("--mxguard", required=True)
    ap.add_argument("--postgrey", default="/usr/sbin/postgrey")
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--duration-s", type=float, default=10)
    ap.add_argument("--conc", default="1,8,32")
    ap.add_argument("--pool", type=int, default=2000, help="known triplets for the repeat rows")
    ap.add_argument("--fill", type=int, default=1_000_000, help="triplets for the RSS step (0: skip)")
    ap.add_argument("--fill-duration-s", type=float, default=240)
    ap.add_argument("--json", help="write the raw rows here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    args.conc = [int(c) for c in args.conc.split(",")]

    load_before = open("/proc/loadavg").read().split()[:3]
    tmp = tempfile.mkdtemp(prefix="mxbench.")
    os.chmod(tmp, 0o755)
    servers, rows, fill = [], [], None
    delay_s = 1
    try:
        print(f"workdir {tmp}", file=sys.stderr)
        # the ceiling: a do-nothing server that parses the request and answers DUNNO
        port = free_port()
        s = Server("dunno", [args.dunno_server, f"127.0.0.1:{port}"], port, f"{tmp}/dunno.log")
        servers.append(s)
        for i, c in enumerate(args.conc):
            rows.append(measured(args, s, "ceiling", c, "unique", 1000 + i))
        s.stop()

        # postgrey 1.37 as Debian ships it (default whitelists, BerkeleyDB in a temp dbdir)
        pg_db = f"{tmp}/postgrey"
        os.makedirs(pg_db)
        shutil.chown(pg_db, "postgrey", "postgrey")
        port = free_port()
        s = Server("postgrey", [args.postgrey, f"--inet=127.0.0.1:{port}", f"--dbdir={pg_db}",
                                f"--delay={delay_s}", "--hostname=bench.example.test"],
                   port, f"{tmp}/postgrey.log")
        servers.append(s)
        rows += greylist_rows(args, s, delay_s, 2000)
        s.stop()

        # mxguard with the same delay, whitelists and seeds
        state = f"{tmp}/mxguard-state"
        port = free_port()
        conf = f"{tmp}/mxguard.toml"
        mxguard_config(conf, port, state, delay_s)
        s = Server("mxguard", [args.mxguard, "serve", "--config", conf], port, f"{tmp}/mxguard.log")
        servers.append(s)
        rows += greylist_rows(args, s, delay_s, 2000)

        if args.fill:
            t0 = time.monotonic()
            sampler = RssSampler(s.pid)
            sampler.start()
            r = load(args, port, 8, "unique", 9_000_000, requests=args.fill,
                     duration=args.fill_duration_s)
            sampler.stop.set()
            sampler.join()
            time.sleep(2.5)   # let the write-behind flush land before measuring the files
            fill = {
                "filled": r["ok"], "errors": r["errors"], "fill_rps": r["rps"],
                "seconds": time.monotonic() - t0,
                "rss_mib": status_kib(s.pid, "VmRSS") / 1024.0,
                "peak_rss_mib": max(sampler.peak, status_kib(s.pid, "VmHWM")) / 1024.0,
                "state_mib": dir_mib(state),
                "actions": r["actions"],
            }
            print(f"  fill: {fill}", file=sys.stderr, flush=True)
        s.stop()
    finally:
        for s in servers:
            s.stop()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "fill": fill}, f, indent=1)
    args.loadavg = (load_before, open("/proc/loadavg").read().split()[:3])
    print(table(rows, fill, args))


def table(rows, fill, args):
    by = {(r["server"], r["scenario"], r["conc"]): r for r in rows}
    out = ["| server / scenario | conc | req/s | p50 ms | p99 ms | server CPU µs/req | server CPU % "
           "| peak RSS MiB | actions | mxguard ÷ postgrey | mxguard ÷ ceiling |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        vs_pg = vs_ceil = ""
        if r["server"] == "mxguard":
            pg = by.get(("postgrey", r["scenario"], r["conc"]))
            ceil = by.get(("dunno", "ceiling", r["conc"]))
            if pg and pg["rps"]:
                vs_pg = f"{r['rps'] / pg['rps']:.1f}×"
            if ceil and ceil["rps"]:
                vs_ceil = f"{100 * r['rps'] / ceil['rps']:.0f}%"
        name = {"dunno": "do-nothing (DUNNO) ceiling", "postgrey": "postgrey 1.37",
                "mxguard": "mxguard"}[r["server"]]
        scen = "" if r["scenario"] == "ceiling" else f" {r['scenario']}"
        err = f" ({r['errors']} errors)" if r["errors"] else ""
        out.append(f"| {name}{scen} | {r['conc']} | {r['rps']:.0f}{err} | {r['p50']:.2f} | "
                   f"{r['p99']:.2f} | {r['cpu_us_per_req']:.0f} | {r['cpu_pct']:.0f} | "
                   f"{r['rss_mib']:.1f} | {actions_text(r['actions'], r['ok'])} | {vs_pg} | {vs_ceil} |")
    if fill:
        out.append("")
        out.append(f"mxguard after filling {fill['filled']:,} unique triplets at c=8 "
                   f"({fill['fill_rps']:.0f} req/s, {fill['errors']} errors, on top of the rows "
                   f"above): RSS {fill['rss_mib']:.0f} MiB (peak {fill['peak_rss_mib']:.0f} MiB), "
                   f"state directory {fill['state_mib']:.0f} MiB.")
    out.append("")
    out.append(f"Rows: --requests {args.requests} --duration-s {args.duration_s:g} "
               f"(whichever first), repeat pool {args.pool} triplets, greylist delay 1 s; "
               f"load average before {' '.join(args.loadavg[0])}, after {' '.join(args.loadavg[1])} "
               f"({os.cpu_count()} cores).")
    return "\n".join(out)


if __name__ == "__main__":
    main()
