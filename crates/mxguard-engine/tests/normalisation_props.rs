//! Property tests: greylist key normalisation and the store update rules.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use mxguard_engine::UnixTime;
use mxguard_engine::greylist::{GreylistSettings, normalise_sender};
use mxguard_engine::store::{AwlRecord, GreylistTimes, TripletRecord};
use proptest::prelude::*;

fn local_part() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9._+=-]{0,24}",
        "prvs=[0-9a-z]{10}=[a-z0-9.]{1,10}",
        "SRS0=[A-Za-z0-9]{4}=[A-Z0-9]{2}=[a-z.]{3,10}=[a-z0-9]{1,8}",
        "bounce-[0-9]{1,6}-[0-9]{1,6}",
    ]
}

proptest! {
    #[test]
    fn sender_normalisation_is_idempotent(local in local_part(), domain in "[a-zA-Z0-9.-]{1,20}") {
        let s = format!("{local}@{domain}");
        let once = normalise_sender(&s);
        prop_assert_eq!(normalise_sender(&once), once.clone());
        // The domain is never touched; no digit-only word and no '+' survive in the local part.
        let (l, d) = once.rsplit_once('@').unwrap();
        prop_assert_eq!(d, domain.as_str());
        prop_assert!(!l.contains('+'));
    }

    #[test]
    fn key_shape_and_network_sharing(a in any::<u32>(), host in any::<u8>(),
                                     local in local_part(), rcpt in "[a-zA-Z0-9.]{1,12}@[a-zA-Z.]{1,12}") {
        let gl = GreylistSettings::default();
        let ip1 = IpAddr::V4(Ipv4Addr::from(a));
        let ip2 = IpAddr::V4(Ipv4Addr::from((a & 0xffff_ff00) | u32::from(host)));
        let sender = format!("{local}@Example.COM");
        let k1 = gl.key(ip1, &sender, &rcpt);
        let k2 = gl.key(ip2, &sender, &rcpt.to_uppercase());
        // Same /24, recipient case ignored: same key.
        prop_assert_eq!(&k1, &k2);
        let text = k1.as_str();
        prop_assert_eq!(text.to_ascii_lowercase(), text);
        let net = Ipv4Addr::from(a & 0xffff_ff00).to_string();
        let prefix = format!("{net}/");
        let suffix = format!("/{}", rcpt.to_ascii_lowercase());
        prop_assert!(text.starts_with(&prefix));
        prop_assert!(text.ends_with(&suffix));
    }

    #[test]
    fn ipv6_keys_use_the_64(hi in any::<u64>(), lo1 in any::<u64>(), lo2 in any::<u64>()) {
        let gl = GreylistSettings::default();
        let mk = |lo: u64| IpAddr::V6(Ipv6Addr::from((u128::from(hi) << 64) | u128::from(lo)));
        prop_assert_eq!(gl.key(mk(lo1), "a@b", "c@d"), gl.key(mk(lo2), "a@b", "c@d"));
    }

    #[test]
    fn touched_invariants(first in 0u64..10_000, gap in 0u64..10_000, later in 0u64..400_000,
                          had in any::<bool>()) {
        let times = GreylistTimes { delay: 300, retry_window: 172_800, max_age: 3_024_000 };
        let prev = had.then_some(TripletRecord { first: UnixTime(first), last: UnixTime(first + gap) });
        let now = UnixTime(first + gap + later);
        let cur = TripletRecord::touched(prev, now, &times);
        prop_assert_eq!(cur.last, now);
        prop_assert!(cur.first <= now);
        // A record that had passed keeps its first time (until max_age), so it keeps passing.
        if let Some(p) = prev {
            if p.passed(&times) && !p.expired(now, &times) {
                prop_assert_eq!(cur.first, p.first);
                prop_assert!(cur.passed(&times));
            }
            if !p.passed(&times) && now.since(p.first) > times.retry_window {
                prop_assert_eq!(cur.first, now);
            }
        } else {
            prop_assert_eq!(cur.first, now);
        }
    }

    #[test]
    fn awl_counts_at_most_once_an_hour(steps in proptest::collection::vec(0u64..8000, 1..40)) {
        let mut rec = None;
        let mut t = 1_000_000u64;
        let mut last_count_time: Option<u64> = None;
        let mut expected = 0u32;
        for s in steps {
            t += s;
            if last_count_time.is_none_or(|l| t >= l + 3600) {
                expected += 1;
                last_count_time = Some(t);
            }
            let r = AwlRecord::bumped(rec, UnixTime(t), 3_024_000);
            prop_assert_eq!(r.count, expected);
            rec = Some(r);
        }
    }
}
