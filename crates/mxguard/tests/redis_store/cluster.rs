//! The Redis store on a real three-node Redis Cluster (`cluster_setup`): the same scenario,
//! two-hosts and ban-propagation bodies as on one server, listings that must see keys on
//! every node, the round trips of a policy request, and a killed node failing open.

use std::sync::atomic::Ordering;
use std::time::Duration;

use mxguard_engine::UnixTime;
use mxguard_engine::limits::gcra::{Mode, Window};
use mxguard_engine::store::{GreylistKey, Store, StoreError, TripletRecord};

use super::cluster_setup::{Cluster, cli, store_on};
use super::{T, answers_again, ban_propagation, rcpt_round_trips, scenario, shared_limit_and_ban};

#[tokio::test]
async fn the_store_scenario_runs_on_a_redis_cluster_and_listings_see_every_node() {
    let c = Cluster::start().await;
    let s = c.store("t1:");
    scenario(&s, &c.store("t2:")).await;

    // 40 more triplets: their keys spread over the slots, so over the three nodes.
    for i in 0..40 {
        let key = GreylistKey::from_normalised(format!("192.0.2.{i}/s@x/r@y"));
        let rec = TripletRecord {
            first: UnixTime(T),
            last: UnixTime(T),
        };
        s.greylist_put(&key, rec).await.unwrap();
    }
    let per_node: Vec<usize> = c.ports.iter().map(|&p| c.keys_on(p, "t1:gl:*")).collect();
    assert_eq!(
        per_node.iter().filter(|&&n| n > 0).count(),
        3,
        "triplets on every node: {per_node:?}"
    );
    let total: usize = per_node.iter().sum();
    assert!(total >= 40, "{per_node:?}");
    assert_eq!(s.counts().await.unwrap().triplets as usize, total);
    assert_eq!(s.greylist_list(1000).await.unwrap().len(), total);
    assert_eq!(s.greylist_list(7).await.unwrap().len(), 7, "limit kept");

    // Bans and the ban version carry the hash tag {ban}: one slot, one node.
    let ban = mxguard_engine::auth::ban::BanRecord {
        since: UnixTime(T),
        until: UnixTime(T + 60),
        count: 1,
        jail: "j".into(),
        reason: "r".into(),
    };
    s.ban_put("198.51.100.1/32", ban).await.unwrap();
    let slot = |k: &str| cli(c.ports[0], &["cluster", "keyslot", k]);
    assert_eq!(slot("t1:{ban}:198.51.100.1/32"), slot("t1:{ban}-version"));
    let owner = c.owner("t1:{ban}-version");
    assert_eq!(
        c.keys_on(owner, "t1:{ban}:*"),
        2,
        "the scenario's ban and this one"
    );
    // The scenario's two puts and two removes, and this put: each bumps it.
    assert_eq!(cli(owner, &["get", "t1:{ban}-version"]), "5");
    assert_eq!(s.ban_version().await.unwrap(), Some(5));
    // Status shows the cluster's primaries (learnt by the listings).
    let mut want: Vec<String> = c.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    want.sort();
    assert_eq!(*s.health().cluster_primaries.lock().unwrap(), want);
}

#[tokio::test]
async fn two_hosts_on_a_cluster_share_a_limit_and_a_ban_and_bans_propagate() {
    let c = Cluster::start().await;
    shared_limit_and_ban(c.store("mx:"), c.store("mx:")).await;
    ban_propagation(c.store("sync:"), c.store("sync:")).await;
}

/// Calls of the batch read and the scripts that the cluster's nodes served.
fn served(c: &Cluster) -> u64 {
    let mut n = 0;
    for &p in &c.ports {
        for line in cli(p, &["info", "commandstats"]).lines() {
            let counted = ["cmdstat_mget:", "cmdstat_evalsha:", "cmdstat_eval:"];
            if counted.iter().any(|c| line.starts_with(c)) {
                let calls = line
                    .split([':', ','])
                    .find_map(|f| f.strip_prefix("calls="))
                    .unwrap();
                n += calls.parse::<u64>().unwrap();
            }
        }
    }
    n
}

/// The round-trip test of one server, on the cluster: the same two operations per request
/// (latency: the client sends the per-slot parts of the batch read at once), while the
/// nodes serve the batch read split per hash slot.
#[tokio::test]
async fn a_greylisted_rcpt_request_on_a_cluster_costs_two_round_trips() {
    let c = Cluster::start().await;
    let seeds: Vec<String> = c.seeds().iter().map(|s| format!("\"{s}\"")).collect();
    let store = format!("cluster = [{}]\n", seeds.join(", "));
    let steps = rcpt_round_trips(&store, || served(&c)).await;
    eprintln!("cluster round trips (operations, commands served) per request: {steps:?}");
    let ops: Vec<u64> = steps.iter().map(|s| s.0).collect();
    assert_eq!(ops, [2, 3, 2], "as on one server");
    // The batch read's keys (the ban prefixes under {ban}, the account, two limits, the
    // auto-whitelist) fall in 5 slots, fixed by their names: 5 MGET parts, plus the
    // greylist script (and on the first pass the auto-whitelist script, loaded there with
    // EVALSHA refused + EVAL).
    let served: Vec<u64> = steps.iter().map(|s| s.1).collect();
    assert_eq!(served, [6, 8, 6], "commands the nodes served");
}

#[tokio::test]
async fn a_killed_cluster_node_makes_its_operations_fail_open_within_the_timeout() {
    let mut c = Cluster::start().await;
    let s = c.store("k:");
    let victim = c.ports[2];
    let key = (0..1000)
        .map(|i| format!("u{i}"))
        .find(|k| c.owner(&format!("k:lim:{k}")) == victim)
        .unwrap();
    let w = [Window::new(10, 60)];
    s.limit_apply(&key, &w, UnixTime(T), 1, Mode::Conform)
        .await
        .unwrap();
    assert!(s.limit_get(&key).await.unwrap().is_some());

    c.kill(2);
    let t = tokio::time::Instant::now();
    let e = s.limit_get(&key).await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "failed after {:?} (timeout 300 ms)",
        t.elapsed()
    );
    // Every operation, on any node's keys, ends within the budget, answered or failed open.
    let mut failed = 0;
    for i in 0..30 {
        let t = tokio::time::Instant::now();
        match s
            .limit_apply(&format!("u{i}"), &w, UnixTime(T), 1, Mode::Conform)
            .await
        {
            Ok(_) => {}
            Err(StoreError::Unavailable(_)) => failed += 1,
            Err(e) => panic!("{e}"),
        }
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }
    assert!(failed > 0, "no operation failed with a node down");
    assert!(s.health().outages.load(Ordering::Relaxed) >= 1);
    // Once the others mark it failed the cluster refuses everything; listings fail open too.
    c.wait_state("fail").await;
    let t = tokio::time::Instant::now();
    for _ in 0..3 {
        assert!(matches!(s.counts().await, Err(StoreError::Unavailable(_))));
    }
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

/// The store is made (as the daemon makes it at start) while no node runs: operations fail
/// open, and once the cluster is up the store connects by itself.
#[tokio::test]
async fn a_store_made_while_the_cluster_is_down_connects_once_it_is_up() {
    let pairs = Cluster::free_ports();
    let seeds: Vec<String> = pairs[..2]
        .iter()
        .map(|(p, _)| format!("127.0.0.1:{p}"))
        .collect();
    let s = store_on(seeds, "late:");
    let t = tokio::time::Instant::now();
    let e = s.ban_get("192.0.2.1/32").await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(s.health().is_down());
    let _c = Cluster::start_on(&pairs).await;
    assert!(
        answers_again(&s).await,
        "no connection after the cluster came up"
    );
    assert!(!s.health().is_down());
}

/// The daemon on a cluster: `mxguard status` names the seeds and the primaries in use.
#[tokio::test]
async fn the_daemon_status_shows_the_clusters_primaries() {
    let c = Cluster::start().await;
    let seeds: Vec<String> = c.seeds().iter().map(|s| format!("\"{s}\"")).collect();
    let store = format!("cluster = [{}]\n", seeds.join(", "));
    let (d, _dir) = super::daemon_on(&store, "st:", "", None).await;
    let st = mxguard::control::handle(mxguard::control::ControlRequest::Status, &d.shared).await;
    let cluster = &st.data["store"]["cluster"];
    assert_eq!(cluster["seeds"].as_array().unwrap().len(), 2, "{}", st.data);
    let mut want: Vec<String> = c.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    want.sort();
    assert_eq!(cluster["primaries"], serde_json::json!(want), "{}", st.data);
    assert_eq!(st.data["store"]["reachable"], true, "{}", st.data);
    d.shutdown();
    d.wait().await.unwrap();
}
