#!/usr/bin/env python3
"""Runs a load generator against a server and measures the server as a process group.

    group_measure.py PGID -- COMMAND [ARGS...]

COMMAND (policy_load) must print one JSON object; this prints that object with a "server"
member added: CPU seconds, peak RSS and PSS sums (KiB) and the most processes seen, over
every live process whose process group is PGID (pre-fork servers such as postfwd2 run a
master, a cache daemon and 10-100 children; a single-process server is a group of one).

CPU is utime+stime+cutime+cstime of the members alive at the end minus what they had at the
start (processes started during the run count from zero); a member that exits during the
run is counted through its reaper's cutime when the reaper is a member. Memory is sampled
every 0.2 s from /proc/PID/status (VmRSS) and /proc/PID/smaps_rollup (Pss); for pre-fork
servers the RSS sum counts shared pages once per process, PSS is the fair figure.
"""

import json
import os
import subprocess
import sys
import threading
import time

HZ = os.sysconf("SC_CLK_TCK")


def members(pgid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name may contain spaces and parentheses: split after the last ')'
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid:
            out.append((int(d), fields))
    return out


def cpu_ticks(fields):
    # fields[0] is state (stat field 3): utime, stime, cutime, cstime are stat fields 14-17
    return sum(int(x) for x in fields[11:15])


def kib(path, key):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit(__doc__)
    pgid = int(sys.argv[1])
    start = {pid: cpu_ticks(f) for pid, f in members(pgid)}
    if not start:
        sys.exit(f"no process in group {pgid}")
    peak = {"rss": 0, "pss": 0, "procs": 0}
    done = threading.Event()

    def sample():
        while not done.is_set():
            ms = members(pgid)
            rss = sum(kib(f"/proc/{p}/status", "VmRSS:") for p, _ in ms)
            pss = sum(kib(f"/proc/{p}/smaps_rollup", "Pss:") for p, _ in ms)
            peak["rss"] = max(peak["rss"], rss)
            peak["pss"] = max(peak["pss"], pss)
            peak["procs"] = max(peak["procs"], len(ms))
            done.wait(0.2)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.monotonic()
    run = subprocess.run(sys.argv[3:], capture_output=True, text=True)
    wall = time.monotonic() - t0
    done.set()
    t.join()
    end = {pid: cpu_ticks(f) for pid, f in members(pgid)}
    ticks = sum(v - start.get(pid, 0) for pid, v in end.items())
    if run.returncode != 0:
        sys.exit(f"{sys.argv[3]} failed ({run.returncode}): {run.stderr.strip()[:500]}")
    result = json.loads(run.stdout)
    result["server"] = {
        "cpu_s": round(ticks / HZ, 2),
        "wall_s": round(wall, 2),
        "peak_rss_kib": peak["rss"],
        "peak_pss_kib": peak["pss"],
        "procs": peak["procs"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
