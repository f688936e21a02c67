//! A backend-independent check of the [`Store`] contract, so every backend (memory, embedded,
//! Redis) runs the same scenario (DESIGN.md: "the same scenario runs against every store
//! backend").
//!
//! [`check`] drives a store that starts empty through the greylist and auto-whitelist
//! operations with explicit times (no clock) and returns the first deviation as an error
//! message. Backend test suites call it; it is not used at run time.

use std::net::IpAddr;

use super::{AwlRecord, GreylistKey, GreylistTimes, Store, TripletRecord};
use crate::clock::UnixTime;

const T0: u64 = 1_790_000_000;

fn t(offset: u64) -> UnixTime {
    UnixTime(T0 + offset)
}

fn ensure(cond: bool, what: &str) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what.to_owned()) }
}

fn rec(first: u64, last: u64) -> TripletRecord {
    TripletRecord {
        first: t(first),
        last: t(last),
    }
}

/// Runs the scenario against an empty `store`.
pub async fn check(store: &dyn Store) -> Result<(), String> {
    let err = |e: super::StoreError| e.to_string();
    let times = GreylistTimes {
        delay: 300,
        retry_window: 172_800,
        max_age: 3_024_000,
    };
    let key =
        |n: u32| GreylistKey::from_normalised(format!("192.0.2.0/s@x.example/r{n}@y.example"));
    let counts = store.counts().await.map_err(err)?;
    ensure(
        counts.triplets == 0 && counts.clients == 0,
        "store must start empty",
    )?;

    // Greylisting lifecycle of one triplet.
    let o = store
        .greylist_touch(&key(1), t(0), times)
        .await
        .map_err(err)?;
    ensure(
        o.previous.is_none() && o.current == rec(0, 0),
        "new triplet",
    )?;
    let o = store
        .greylist_touch(&key(1), t(100), times)
        .await
        .map_err(err)?;
    ensure(
        o.previous == Some(rec(0, 0)) && o.current == rec(0, 100),
        "early retry",
    )?;
    let o = store
        .greylist_touch(&key(1), t(300), times)
        .await
        .map_err(err)?;
    ensure(
        o.current == rec(0, 300) && o.current.passed(&times),
        "pass after delay",
    )?;
    let o = store
        .greylist_touch(&key(1), t(400_000), times)
        .await
        .map_err(err)?;
    ensure(
        o.current == rec(0, 400_000),
        "passed triplet ignores the retry window",
    )?;
    // Retry window expired before a pass: starts again.
    store
        .greylist_touch(&key(2), t(0), times)
        .await
        .map_err(err)?;
    let o = store
        .greylist_touch(&key(2), t(172_801), times)
        .await
        .map_err(err)?;
    ensure(o.current == rec(172_801, 172_801), "retry window restarts")?;
    // Forgotten after max_age.
    let o = store
        .greylist_touch(&key(1), t(400_000 + 3_024_001), times)
        .await
        .map_err(err)?;
    ensure(o.current.first == o.current.last, "max_age forgets")?;

    // Admin operations.
    store
        .greylist_put(&key(3), rec(5, 500))
        .await
        .map_err(err)?;
    ensure(
        store.greylist_get(&key(3)).await.map_err(err)? == Some(rec(5, 500)),
        "put then get",
    )?;
    let list = store.greylist_list(10).await.map_err(err)?;
    ensure(list.len() == 3, "list shows three triplets")?;
    ensure(
        list.iter()
            .any(|e| e.key == key(3).as_str() && e.record == rec(5, 500))
            || list
                .iter()
                .any(|e| e.key.starts_with('#') && e.record == rec(5, 500)),
        "list shows the key (text or #hash) and its record",
    )?;
    ensure(
        store.greylist_remove(&key(3)).await.map_err(err)?,
        "remove existing",
    )?;
    ensure(
        !store.greylist_remove(&key(3)).await.map_err(err)?,
        "remove missing",
    )?;
    ensure(
        store.greylist_get(&key(3)).await.map_err(err)?.is_none(),
        "removed",
    )?;

    // Auto-whitelist: one count per hour.
    let ip: IpAddr = IpAddr::from([198, 51, 100, 7]);
    ensure(
        store.awl_get(ip).await.map_err(err)?.is_none(),
        "no AWL record",
    )?;
    let r = store.awl_bump(ip, t(0), times.max_age).await.map_err(err)?;
    ensure(
        r == AwlRecord {
            count: 1,
            last: t(0),
        },
        "first bump",
    )?;
    let r = store
        .awl_bump(ip, t(1000), times.max_age)
        .await
        .map_err(err)?;
    ensure(
        r.count == 1 && r.last == t(0),
        "no second count within the hour",
    )?;
    let r = store
        .awl_bump(ip, t(3600), times.max_age)
        .await
        .map_err(err)?;
    ensure(
        r == AwlRecord {
            count: 2,
            last: t(3600),
        },
        "count after an hour",
    )?;
    ensure(store.awl_get(ip).await.map_err(err)? == Some(r), "AWL get")?;
    let v6: IpAddr = IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]);
    store
        .awl_put(
            v6,
            AwlRecord {
                count: 9,
                last: t(0),
            },
        )
        .await
        .map_err(err)?;
    ensure(
        store.awl_list(10).await.map_err(err)?.len() == 2,
        "AWL list",
    )?;
    ensure(store.awl_remove(v6).await.map_err(err)?, "AWL remove")?;

    // Expiry: key(2) never passed and is older than the retry window at this time; key(1)
    // is fresh; the AWL client is older than max_age.
    let now = t(400_000 + 3_024_001 + 172_802);
    store
        .greylist_touch(&key(1), now, times)
        .await
        .map_err(err)?;
    let stats = store.expire(now, times).await.map_err(err)?;
    ensure(
        stats.triplets_removed == 1,
        "expiry removes the stale triplet",
    )?;
    ensure(
        stats.clients_removed == 1,
        "expiry removes the stale client",
    )?;
    let counts = store.counts().await.map_err(err)?;
    ensure(
        counts.triplets == 1 && counts.clients == 0,
        "counts after expiry",
    )?;
    store.flush().await.map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn memory_store_conforms() {
        let store = MemoryStore::new();
        let mut fut = std::pin::pin!(check(&store));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(r) => assert_eq!(r, Ok(())),
            std::task::Poll::Pending => panic!("memory store futures are always ready"),
        }
    }
}
