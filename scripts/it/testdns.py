#!/usr/bin/env python3
"""A small authoritative DNS server for the end-to-end suites and benchmarks (stdlib only).

Serves one zone file on 127.0.0.1 over UDP and TCP (RFC 1035 section 4.2) so that mxguard's
real resolver (hickory) and other tools (policyd-spf's pyspf) can be tested offline. It answers
A, AAAA, TXT, MX and PTR from the file, keeps NXDOMAIN (RCODE 3) and "no data" (NOERROR, empty
answer) apart, adds an SOA to negative answers (RFC 2308 negative caching), and never answers
names under a configured "silent" suffix (a dead server, for time-budget tests). Malformed
queries are dropped; one bad query never stops the server.

Zone file: one record per line, `name TYPE value`, `#` comments:
    pass.test      TXT  v=spf1 ip4:192.0.2.0/24 -all
    mx.pass.test   A    192.0.2.25
    pass.test      MX   10 mx.pass.test
    25.2.0.192.in-addr.arpa PTR mx.pass.test
TXT values longer than 255 bytes are split into several character-strings.

Usage: testdns.py ZONEFILE PORT [--silent SUFFIX] [--ttl SECONDS] [--pidfile FILE]
"""

import argparse
import ipaddress
import os
import signal
import socket
import struct
import sys
import threading

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28}
TTL = 60  # --ttl


def encode_name(name):
    out = b""
    for label in name.strip(".").split("."):
        if label:
            raw = label.encode("ascii")
            out += bytes([len(raw)]) + raw
    return out + b"\x00"


def rdata(rtype, value):
    if rtype == "A":
        return ipaddress.IPv4Address(value).packed
    if rtype == "AAAA":
        return ipaddress.IPv6Address(value).packed
    if rtype == "PTR":
        return encode_name(value)
    if rtype == "MX":
        pref, host = value.split(None, 1)
        return struct.pack("!H", int(pref)) + encode_name(host)
    if rtype == "TXT":
        raw = value.encode("utf-8")
        chunks = [raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""]
        return b"".join(bytes([len(c)]) + c for c in chunks)
    raise ValueError("unsupported type " + rtype)


def load_zone(path):
    zone = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 2)
            if len(parts) != 3 or parts[1].upper() not in TYPES:
                sys.exit("%s:%d: expected 'name TYPE value'" % (path, lineno))
            name, rtype, value = parts[0].lower().rstrip("."), parts[1].upper(), parts[2]
            try:
                data = rdata(rtype, value)
            except (ValueError, ipaddress.AddressValueError) as e:
                sys.exit("%s:%d: %s" % (path, lineno, e))
            zone.setdefault(name, []).append((TYPES[rtype], data))
    return zone


def parse_question(msg):
    """(id, flags, qname, qtype, end of question) or None for a malformed query."""
    if len(msg) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", msg[:6])
    if flags & 0x8000 or qdcount != 1:
        return None
    labels, pos = [], 12
    while True:
        if pos >= len(msg):
            return None
        n = msg[pos]
        pos += 1
        if n == 0:
            break
        if n & 0xC0 or pos + n > len(msg):
            return None
        labels.append(msg[pos:pos + n].decode("ascii", "replace"))
        pos += n
    if pos + 4 > len(msg):
        return None
    qtype, _qclass = struct.unpack("!HH", msg[pos:pos + 4])
    return qid, flags, ".".join(labels).lower(), qtype, pos + 4


class Server:
    def __init__(self, zone, silent):
        self.zone = zone
        self.silent = silent

    def answer(self, msg):
        q = parse_question(msg)
        if q is None:
            return None
        qid, flags, qname, qtype, qend = q
        if self.silent and (qname == self.silent or qname.endswith("." + self.silent)):
            return None
        records = self.zone.get(qname)
        rcode = 0 if records is not None else 3
        answers = [d for t, d in (records or []) if t == qtype]
        # QR, opcode copied, AA, RD copied, RA.
        rflags = 0x8000 | (flags & 0x7800) | 0x0400 | (flags & 0x0100) | 0x0080 | rcode
        body = b""
        for d in answers:
            body += b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, TTL, len(d)) + d
        auth = b""
        if not answers:
            soa = encode_name("ns.test") + encode_name("admin.test") + struct.pack(
                "!IIIII", 1, 60, 60, 600, TTL)
            auth = encode_name("test") + struct.pack("!HHIH", 6, 1, TTL, len(soa)) + soa
        header = struct.pack("!HHHHHH", qid, rflags, 1, len(answers), 1 if auth else 0, 0)
        return header + msg[12:qend] + body + auth

    def serve_udp(self, sock):
        while True:
            try:
                msg, peer = sock.recvfrom(4096)
                reply = self.answer(msg)
                if reply is not None:
                    sock.sendto(reply, peer)
            except OSError:
                continue
            except Exception as e:  # never let one query stop the server
                print("testdns: udp error: %r" % e, file=sys.stderr)

    def serve_tcp_conn(self, conn):
        with conn:
            conn.settimeout(10)
            try:
                while True:
                    head = self.recv_exact(conn, 2)
                    if head is None:
                        return
                    msg = self.recv_exact(conn, struct.unpack("!H", head)[0])
                    if msg is None:
                        return
                    reply = self.answer(msg)
                    if reply is not None:
                        conn.sendall(struct.pack("!H", len(reply)) + reply)
            except (OSError, ValueError):
                return

    @staticmethod
    def recv_exact(conn, n):
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def serve_tcp(self, sock):
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            threading.Thread(target=self.serve_tcp_conn, args=(conn,), daemon=True).start()


def main():
    global TTL
    ap = argparse.ArgumentParser(description="tiny authoritative DNS server for tests")
    ap.add_argument("zone")
    ap.add_argument("port", type=int)
    ap.add_argument("--silent", default="", help="never answer names under this suffix")
    ap.add_argument("--ttl", type=int, default=TTL, help="TTL of every record (and SOA minimum)")
    ap.add_argument("--pidfile")
    args = ap.parse_args()
    TTL = args.ttl
    server = Server(load_zone(args.zone), args.silent.lower().strip("."))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", args.port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", args.port))
    tcp.listen(64)
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    threading.Thread(target=server.serve_tcp, args=(tcp,), daemon=True).start()
    server.serve_udp(udp)


if __name__ == "__main__":
    main()
