//! Single-thread throughput of `Policy::decide` on the in-memory store: an engine-only
//! figure (no sockets, no parsing) to compare with the daemon's end-to-end benchmark.
//!
//! `cargo run --release -p mxguard-engine --example decide [N]`

use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mxguard_engine::greylist::GreylistSettings;
use mxguard_engine::{
    ClientWhitelist, FakeClock, MemoryStore, Policy, PolicySettings, RecipientWhitelist, Request,
    UnixTime,
};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500_000);
    let clock = FakeClock::new(UnixTime(1_790_000_000));
    let mut gl = GreylistSettings::default();
    if let Ok(c) = ClientWhitelist::parse(
        "fixture",
        include_str!("../tests/fixtures/whitelist_clients"),
    ) {
        gl.whitelist_clients = c;
    }
    if let Ok(r) = RecipientWhitelist::parse(
        "fixture",
        include_str!("../tests/fixtures/whitelist_recipients"),
    ) {
        gl.whitelist_recipients = r;
    }
    let policy = Policy::new(
        PolicySettings {
            lists: Default::default(),
            greylist: Some(gl),
            ..Default::default()
        },
        Arc::new(MemoryStore::new()),
        Arc::new(clock.clone()),
    );
    let reqs: Vec<Request> = (0..n)
        .map(|i| {
            let ip = IpAddr::from([100, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            let mut r = Request::rcpt(
                ip,
                &format!("bounce-{i}@sender{}.example", i % 1000),
                &format!("user{}@rcpt.example", i % 5000),
            );
            r.client_name = Some(format!("mail{i}.host.example"));
            r.instance = format!("{i:08X}");
            r
        })
        .collect();
    for pass in ["first seen", "retry after delay"] {
        #[allow(clippy::disallowed_methods)] // wall time for the printed figure
        let start = std::time::Instant::now();
        for r in &reqs {
            std::hint::black_box(block_on(policy.decide(r)));
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{pass}: {n} decisions in {secs:.3} s = {:.0}/s ({:.2} us each)",
            f64::from(n) / secs,
            secs * 1e6 / f64::from(n)
        );
        clock.advance(Duration::from_secs(301));
    }
}
