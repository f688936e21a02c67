#!/usr/bin/env python3
"""Fills a policy server's rate-limit state with distinct keys (issue 7 memory target).

    limits_keys.py HOST:PORT N [CONNECTIONS]

Sends N END-OF-MESSAGE policy requests (Postfix 3.7 attribute set, smtpd_end_of_data
restrictions) where every request has its own client address (10.0.0.0/8), SASL login,
sender and sender domain. With the five limits of scripts/bench/limits.sh each accepted
request charges one new key per limit keyed on the login (2), the client and the sender
domain, and the clients fall into min(N, 65536) /24 networks: 4*N + min(N, 65536) keys. Requests are pipelined in batches of 256 per connection.
Prints one JSON object: requests, answers by action, elapsed seconds.
"""

import collections
import json
import socket
import sys
import threading
import time

BATCH = 256


def request(i):
    # the low bits pick the /24, so each /24 gets at most ceil(N/65536) requests (the
    # per-/24 limit of the benchmark is 200/1m: nothing is deferred)
    a, b, c = i & 255, (i >> 8) & 255, (i >> 16) & 255
    user = f"u{i}@d{i}.example"
    attrs = [
        ("request", "smtpd_access_policy"),
        ("protocol_state", "END-OF-MESSAGE"),
        ("protocol_name", "ESMTP"),
        ("client_address", f"10.{a}.{b}.{c}"),
        ("client_name", "unknown"),
        ("reverse_client_name", "unknown"),
        ("helo_name", f"h{i}.example"),
        ("sender", user),
        ("recipient", ""),
        ("recipient_count", "1"),
        ("queue_id", f"Q{i:X}"),
        ("instance", f"i{i:x}"),
        ("size", "1000"),
        ("sasl_method", "PLAIN"),
        ("sasl_username", user),
        ("sasl_sender", ""),
    ]
    return "".join(f"{k}={v}\n" for k, v in attrs) + "\n"


def worker(addr, ids, counts, lock):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    f = s.makefile("rb")
    local = collections.Counter()
    for start in range(0, len(ids), BATCH):
        chunk = ids[start:start + BATCH]
        s.sendall("".join(request(i) for i in chunk).encode())
        for _ in chunk:
            action = None
            while True:
                line = f.readline()
                if not line:
                    raise SystemExit("server closed the connection")
                line = line.rstrip(b"\n")
                if not line:
                    break
                if line.startswith(b"action="):
                    action = line[7:].split(b" ", 1)[0].decode()
            local[action] += 1
    s.close()
    with lock:
        counts.update(local)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    addr, n = sys.argv[1], int(sys.argv[2])
    conns = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    counts, lock = collections.Counter(), threading.Lock()
    t0 = time.monotonic()
    threads = [
        threading.Thread(target=worker, args=(addr, list(range(k, n, conns)), counts, lock))
        for k in range(conns)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"requests": n, "actions": dict(counts),
                      "elapsed_s": round(time.monotonic() - t0, 2)}))


if __name__ == "__main__":
    main()
