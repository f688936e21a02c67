#!/usr/bin/env python3
"""Postfix policy-protocol client for the end-to-end suites.

  policy_client.py ask PORT name=value ...
      sends one smtpd_access_policy request and prints the reply's action line;
  policy_client.py load PORT SECONDS CONNECTIONS
      keeps CONNECTIONS persistent connections busy for SECONDS (distinct triplets and
      users per request) and prints one JSON line: requests answered, unanswered (no reply
      within 5 s or connection lost), the slowest reply and the 99th percentile, in ms.
"""
import json
import socket
import sys
import threading
import time


def request(attrs):
    base = {"request": "smtpd_access_policy", "protocol_state": "RCPT"}
    base.update(attrs)
    return ("".join(f"{k}={v}\n" for k, v in base.items()) + "\n").encode()


def read_reply(f):
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("connection closed")
        line = line.rstrip(b"\n")
        if not line:
            return lines
        lines.append(line.decode())


def ask(port, pairs):
    attrs = dict(p.split("=", 1) for p in pairs)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(request(attrs))
    print(read_reply(s.makefile("rb"))[0])


def load(port, seconds, conns):
    stop = time.monotonic() + seconds
    lat, lost = [], [0]
    lock = threading.Lock()

    def worker(n):
        i = 0
        while time.monotonic() < stop:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                f = s.makefile("rb")
                while time.monotonic() < stop:
                    i += 1
                    req = request({
                        "client_address": f"198.18.{n}.{i % 250 + 1}",
                        "client_name": "unknown",
                        "sender": f"s{i}@load{n}.example",
                        "recipient": f"r{i}@dest.example",
                        "sasl_username": f"load{n}-{i % 50}",
                    })
                    t = time.monotonic()
                    s.sendall(req)
                    read_reply(f)
                    with lock:
                        lat.append((time.monotonic() - t) * 1000)
            except (OSError, ConnectionError):
                with lock:
                    lost[0] += 1
                time.sleep(0.05)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat.sort()
    p99 = lat[int(len(lat) * 0.99)] if lat else 0
    print(json.dumps({"answered": len(lat), "unanswered": lost[0],
                      "max_ms": round(lat[-1] if lat else 0, 1), "p99_ms": round(p99, 1)}))


if __name__ == "__main__":
    if sys.argv[1] == "ask":
        ask(int(sys.argv[2]), sys.argv[3:])
    elif sys.argv[1] == "load":
        load(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
