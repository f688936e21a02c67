//! Load generator for the Dovecot auth-policy endpoint (scripts/bench/auth_policy.sh).
//! std only, built with `rustc -O`. Each connection is one thread with one keep-alive HTTP/1.1
//! connection sending one request at a time, as Dovecot's auth processes do: an allow, then a
//! report (success or failure), for logins and client IPs drawn from large pools so counters,
//! tarpits and bans are exercised. Prints requests/s and latency percentiles.
//!
//! usage: auth_load ADDR CONNECTIONS SECONDS [DISTINCT_IPS] [API_HEADER]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 4 {
        eprintln!("usage: auth_load ADDR CONNECTIONS SECONDS [DISTINCT_IPS] [API_HEADER]");
        std::process::exit(2);
    }
    let addr = a[1].clone();
    let conns: usize = a[2].parse().expect("connections");
    let secs: u64 = a[3].parse().expect("seconds");
    let ips: u64 = a.get(4).map_or(1_000_000, |s| s.parse().expect("distinct ips"));
    let header = a.get(5).cloned().unwrap_or_default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for id in 0..conns {
        let (addr, stop, header) = (addr.clone(), stop.clone(), header.clone());
        handles.push(std::thread::spawn(move || worker(id as u64, &addr, ips, &header, &stop)));
    }
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::SeqCst);
    let mut lat: Vec<u32> = Vec::new();
    let (mut statuses, mut errors) = ([0u64; 3], 0u64);
    for h in handles {
        let (l, s, e) = h.join().expect("worker");
        lat.extend(l);
        for i in 0..3 {
            statuses[i] += s[i];
        }
        errors += e;
    }
    lat.sort_unstable();
    let n = lat.len();
    let pct = |p: f64| lat.get(((n as f64 * p) as usize).min(n.saturating_sub(1))).copied().unwrap_or(0);
    println!(
        "requests={n} seconds={secs} rps={:.0} p50_us={} p90_us={} p99_us={} p999_us={} max_us={} \
         allow0={} tarpit={} reject={} errors={errors}",
        n as f64 / secs as f64,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        lat.last().copied().unwrap_or(0),
        statuses[0],
        statuses[1],
        statuses[2],
    );
}

fn worker(id: u64, addr: &str, ips: u64, header: &str, stop: &AtomicBool) -> (Vec<u32>, [u64; 3], u64) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).ok();
    let mut lat = Vec::with_capacity(1 << 20);
    let mut statuses = [0u64; 3];
    let mut errors = 0;
    let mut buf = vec![0u8; 4096];
    // xorshift: cheap per-thread pseudo-random pools.
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (id + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let ip = x % ips;
        let login = (x >> 20) % 100_000;
        let remote = format!("10.{}.{}.{}", (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
        let (cmd, extra) = if i % 2 == 0 {
            ("allow", String::new())
        } else {
            let ok = (x >> 40) % 4 != 0;
            ("report", format!(",\"success\":{ok},\"policy_reject\":false"))
        };
        i += 1;
        let body = format!(
            "{{\"device_id\":\"\",\"login\":\"user{login}@example.test\",\"protocol\":\"imap\",\
             \"pwhash\":\"{:04x}\",\"remote\":\"{remote}\",\"session_id\":\"s{id}x{i}\"{extra},\"tls\":true}}",
            (x >> 8) & 0xfff
        );
        let hdr = if header.is_empty() { String::new() } else { format!("{header}\r\n") };
        let req = format!(
            "POST /?command={cmd} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: dovecot/auth-policy-client\r\n\
             Connection: Keep-Alive\r\nContent-Type: application/json\r\n{hdr}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let t = Instant::now();
        if s.write_all(req.as_bytes()).is_err() {
            errors += 1;
            break;
        }
        let mut got = 0;
        let ok = loop {
            match s.read(&mut buf[got..]) {
                Ok(0) | Err(_) => break false,
                Ok(n) => got += n,
            }
            let text = &buf[..got];
            if let Some(end) = text.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&text[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                    .unwrap_or(0);
                if got >= end + 4 + len {
                    let b = &text[end + 4..end + 4 + len];
                    if !head.starts_with("http/1.1 200") {
                        errors += 1;
                    } else if b.starts_with(b"{\"status\":0") {
                        statuses[0] += 1;
                    } else if b.starts_with(b"{\"status\":-1") {
                        statuses[2] += 1;
                    } else {
                        statuses[1] += 1;
                    }
                    break true;
                }
            }
            if got == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
        };
        lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
        if !ok {
            errors += 1;
            break;
        }
    }
    (lat, statuses, errors)
}
