//! Model-based property test: random operation sequences give the same answers from the
//! embedded store as from the engine's reference `MemoryStore`, including across flushes,
//! simulated crashes right after a flush, and reopens.

use std::net::IpAddr;
use std::sync::Arc;

use mxguard_engine::store::{GreylistKey, GreylistTimes, MemoryStore, Store};
use mxguard_engine::{FakeClock, UnixTime};
use proptest::prelude::*;

use super::EmbeddedStore;

#[derive(Debug, Clone)]
enum Op {
    Touch(u8, u32),
    Remove(u8),
    Bump(u8, u32),
    Expire(u32),
    Flush,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..12, 0u32..400_000).prop_map(|(k, dt)| Op::Touch(k, dt)),
        1 => (0u8..12).prop_map(Op::Remove),
        2 => (0u8..4, 0u32..8000).prop_map(|(c, dt)| Op::Bump(c, dt)),
        1 => (0u32..4_000_000).prop_map(Op::Expire),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
    ]
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

fn key(k: u8) -> GreylistKey {
    GreylistKey::from_normalised(format!("192.0.2.0/s{k}@x.example/r@y.example"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn embedded_store_behaves_like_the_memory_store(ops in proptest::collection::vec(op(), 1..40)) {
        let times = GreylistTimes { delay: 300, retry_window: 172_800, max_age: 3_024_000 };
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = FakeClock::new(UnixTime(1_790_000_000));
        let open = || EmbeddedStore::open(dir.path(), Arc::new(clock.clone())).expect("open");
        let model = MemoryStore::new();
        let mut real = open();
        let mut now = 1_790_000_000u64;
        for op in ops {
            match op {
                Op::Touch(k, dt) => {
                    now += u64::from(dt);
                    let a = block_on(model.greylist_touch(&key(k), UnixTime(now), times)).expect("model");
                    let b = block_on(real.greylist_touch(&key(k), UnixTime(now), times)).expect("real");
                    prop_assert_eq!(a, b);
                }
                Op::Remove(k) => {
                    let a = block_on(model.greylist_remove(&key(k))).expect("model");
                    let b = block_on(real.greylist_remove(&key(k))).expect("real");
                    prop_assert_eq!(a, b);
                }
                Op::Bump(c, dt) => {
                    now += u64::from(dt);
                    let ip = IpAddr::from([198, 51, 100, c]);
                    let a = block_on(model.awl_bump(ip, UnixTime(now), times.max_age)).expect("model");
                    let b = block_on(real.awl_bump(ip, UnixTime(now), times.max_age)).expect("real");
                    prop_assert_eq!(a, b);
                }
                Op::Expire(dt) => {
                    let at = UnixTime(now + u64::from(dt));
                    let a = block_on(model.expire(at, times)).expect("model");
                    let b = block_on(real.expire(at, times)).expect("real");
                    prop_assert_eq!(a, b);
                }
                Op::Flush => {
                    real.flush_now().expect("flush");
                    // A crash right after a flush loses nothing.
                    real.simulate_crash();
                    real = open();
                }
                Op::Reopen => {
                    drop(real);
                    real = open();
                }
            }
            let a = block_on(model.counts()).expect("model");
            let b = block_on(real.counts()).expect("real");
            prop_assert_eq!(a, b);
        }
        for k in 0..12 {
            let a = block_on(model.greylist_get(&key(k))).expect("model");
            let b = block_on(real.greylist_get(&key(k))).expect("real");
            prop_assert_eq!(a, b);
        }
    }
}
