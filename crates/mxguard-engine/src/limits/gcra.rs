//! GCRA (generic cell rate algorithm, ITU-T I.371 "virtual scheduling") over one or more
//! windows, in exact integer arithmetic. Pure functions: the store backends call
//! [`apply`] inside their own lock or transaction, so every backend has the same semantics.
//!
//! A window `N/P` (N cells per P seconds, burst B, by default B = N) keeps one number per key:
//! the theoretical arrival time (TAT). Time is scaled by N (one unit = 1/N s), so the
//! emission interval T = P/N is exactly `P` units and nothing is rounded. A request of cost
//! `n` at time t conforms when `max(TAT, t) + n·T − t ≤ B·T`; it then moves the TAT there.
//! Consequences, checked by the property tests below:
//! - from an idle key exactly B cells pass at one instant, and no more;
//! - over any interval of length L at most `B + ⌊L·N/P⌋` cells pass (no fixed-window edge
//!   where 2N pass in an instant and the count then drops to zero);
//! - after a refusal, the reported `retry_after` is exactly when the request would conform;
//! - with several windows a request must conform to all of them, and a refused request
//!   changes none of them.
//!
//! What it does not do: decide what a cell is (messages, recipients, bytes) or which key a
//! request maps to: that is [`super::LimitSettings`].

use crate::clock::UnixTime;

/// One window of a limit: `count` cells per `period_secs`, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub count: u64,
    pub period_secs: u64,
    pub burst: u64,
}

impl Window {
    /// `count` per `period_secs` with the default burst (`count`).
    pub fn new(count: u64, period_secs: u64) -> Self {
        Window {
            count,
            period_secs,
            burst: count,
        }
    }

    fn scaled(&self, now: UnixTime) -> u128 {
        u128::from(now.0) * u128::from(self.count.max(1))
    }

    /// Emission interval T in scaled units.
    fn t(&self) -> u128 {
        u128::from(self.period_secs.max(1))
    }

    fn tolerance(&self) -> u128 {
        u128::from(self.burst) * self.t()
    }

    /// Seconds (rounded up) until scaled time `s`, from `now`.
    fn secs_until(&self, s: u128, now: UnixTime) -> u64 {
        let c = u128::from(self.count.max(1));
        let at = s.div_ceil(c);
        u64::try_from(at.saturating_sub(u128::from(now.0))).unwrap_or(u64::MAX)
    }
}

/// The stored state of one key: one TAT per window (scaled units, see module docs), and when
/// every window has drained (the entry may then be deleted: it equals no entry).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GcraState {
    pub tats: Vec<u128>,
    pub idle_at: UnixTime,
}

/// What a call should do to the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only look: would `cost` conform now? (RCPT stage: nothing is charged.)
    Check,
    /// Charge `cost` if it conforms, else change nothing.
    Conform,
    /// Charge `cost` unconditionally (END-OF-MESSAGE: the mail was accepted already).
    Force,
}

/// The result of [`apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the cost conformed to every window.
    pub allowed: bool,
    /// When refused: the index of the window that frees up last.
    pub window: Option<usize>,
    /// When refused: seconds until the same cost conforms to every window (`u64::MAX` if
    /// never: the cost is larger than a window's burst).
    pub retry_after: u64,
    /// Cells still available now in the tightest window, after this call.
    pub remaining: u64,
}

fn tat_of(state: Option<&GcraState>, windows: &[Window], i: usize) -> u128 {
    match state {
        Some(s) if s.tats.len() == windows.len() => s.tats.get(i).copied().unwrap_or(0),
        // No state, or the configuration changed its windows: start afresh.
        _ => 0,
    }
}

/// Applies a request of `cost` cells at `now` to `state` (see module docs). Returns the
/// outcome and the new state (`None` when nothing changed).
pub fn apply(
    state: Option<&GcraState>,
    windows: &[Window],
    now: UnixTime,
    cost: u64,
    mode: Mode,
) -> (Outcome, Option<GcraState>) {
    let mut refused: Option<(usize, u64)> = None;
    let mut new_tats = Vec::with_capacity(windows.len());
    for (i, w) in windows.iter().enumerate() {
        let t = w.scaled(now);
        let tat = tat_of(state, windows, i).max(t);
        let next = tat.saturating_add(u128::from(cost) * w.t());
        if next - t > w.tolerance() {
            let retry = if u128::from(cost) > u128::from(w.burst) {
                u64::MAX
            } else {
                w.secs_until(next - w.tolerance(), now)
            };
            // Report the binding window: the one that frees up last.
            if refused.is_none_or(|(_, r)| retry > r) {
                refused = Some((i, retry));
            }
        }
        new_tats.push(next);
    }
    let charge = match mode {
        Mode::Check => false,
        Mode::Conform => refused.is_none(),
        Mode::Force => true,
    };
    let new_state = charge.then(|| {
        let idle = windows
            .iter()
            .zip(&new_tats)
            .map(|(w, tat)| w.secs_until(*tat, UnixTime(0)))
            .max()
            .unwrap_or(0);
        GcraState {
            tats: new_tats,
            idle_at: UnixTime(idle),
        }
    });
    let after = new_state.as_ref().or(state);
    let remaining = windows
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let t = w.scaled(now);
            let tat = tat_of(after, windows, i).max(t);
            let used = tat - t;
            let free = w.tolerance().saturating_sub(used) / w.t();
            u64::try_from(free).unwrap_or(u64::MAX)
        })
        .min()
        .unwrap_or(u64::MAX);
    let outcome = Outcome {
        allowed: refused.is_none(),
        window: refused.map(|(i, _)| i),
        retry_after: refused.map_or(0, |(_, r)| r),
        remaining,
    };
    (outcome, new_state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Runs requests of cost 1 at the given times (sorted) and returns the admitted times.
    fn run(windows: &[Window], times: &[u64]) -> Vec<u64> {
        let mut state: Option<GcraState> = None;
        let mut admitted = Vec::new();
        for &t in times {
            let (o, s) = apply(state.as_ref(), windows, UnixTime(t), 1, Mode::Conform);
            if o.allowed {
                admitted.push(t);
            }
            if s.is_some() {
                state = s;
            }
        }
        admitted
    }

    #[test]
    fn fifty_per_hour_burst_then_one_every_72s() {
        let w = [Window::new(50, 3600)];
        let mut s = None;
        for _ in 0..50 {
            let (o, n) = apply(s.as_ref(), &w, UnixTime(1000), 1, Mode::Conform);
            assert!(o.allowed);
            s = n;
        }
        let (o, n) = apply(s.as_ref(), &w, UnixTime(1000), 1, Mode::Conform);
        assert!(!o.allowed);
        assert!(n.is_none());
        assert_eq!(o.retry_after, 72);
        assert_eq!(o.remaining, 0);
        let (o, _) = apply(s.as_ref(), &w, UnixTime(1071), 1, Mode::Conform);
        assert!(!o.allowed);
        let (o, _) = apply(s.as_ref(), &w, UnixTime(1072), 1, Mode::Conform);
        assert!(o.allowed);
    }

    #[test]
    fn check_never_charges_and_force_always_does() {
        let w = [Window::new(2, 60)];
        let (o, n) = apply(None, &w, UnixTime(10), 2, Mode::Check);
        assert!(o.allowed && n.is_none());
        let (o, n) = apply(None, &w, UnixTime(10), 5, Mode::Force);
        assert!(!o.allowed);
        let s = n.unwrap();
        // 5 cells charged on a 2/60s window: 3 cells over, drains 150 s after the burst.
        let (o, _) = apply(Some(&s), &w, UnixTime(10), 1, Mode::Check);
        assert!(!o.allowed);
        assert_eq!(o.retry_after, 120);
        assert_eq!(s.idle_at, UnixTime(160));
    }

    #[test]
    fn cost_above_burst_never_conforms() {
        let w = [Window::new(10, 60)];
        let (o, _) = apply(None, &w, UnixTime(0), 11, Mode::Conform);
        assert!(!o.allowed);
        assert_eq!(o.retry_after, u64::MAX);
    }

    #[test]
    fn changed_windows_start_afresh() {
        let w1 = [Window::new(1, 60)];
        let (_, s) = apply(None, &w1, UnixTime(0), 1, Mode::Force);
        let w2 = [Window::new(1, 60), Window::new(5, 3600)];
        let (o, _) = apply(s.as_ref(), &w2, UnixTime(0), 1, Mode::Check);
        assert!(o.allowed);
    }

    fn window() -> impl Strategy<Value = Window> {
        (1u64..20, 1u64..500, 0u64..3).prop_map(|(count, period, extra)| Window {
            count,
            period_secs: period,
            burst: count.saturating_sub(extra).max(1),
        })
    }

    proptest! {
        /// Over every interval [a, a+L], admitted <= B + floor(L*N/P) for each window.
        #[test]
        fn never_more_than_burst_plus_rate(
            ws in proptest::collection::vec(window(), 1..3),
            mut times in proptest::collection::vec(0u64..2000, 1..120),
        ) {
            times.sort_unstable();
            let adm = run(&ws, &times);
            for w in &ws {
                for i in 0..adm.len() {
                    for j in i..adm.len() {
                        let l = adm[j] - adm[i];
                        let n = (j - i + 1) as u128;
                        let bound = u128::from(w.burst)
                            + u128::from(l) * u128::from(w.count) / u128::from(w.period_secs);
                        prop_assert!(n <= bound, "{n} admitted in {l}s, bound {bound} for {w:?}");
                    }
                }
            }
        }

        /// From idle, exactly `burst` requests pass at one instant (the tightest window's).
        #[test]
        fn admits_exactly_the_burst(ws in proptest::collection::vec(window(), 1..3), t in 0u64..1_000_000) {
            let times = vec![t; 200];
            let adm = run(&ws, &times);
            let b = ws.iter().map(|w| w.burst).min().unwrap();
            prop_assert_eq!(adm.len() as u64, b);
        }

        /// A refused request conforms exactly `retry_after` seconds later, not one second
        /// earlier; a refusal changes no window.
        #[test]
        fn recovers_at_the_reported_time(
            ws in proptest::collection::vec(window(), 1..3),
            t in 0u64..1_000_000,
            cost in 1u64..4,
            pre in 0u64..30,
        ) {
            let mut s: Option<GcraState> = None;
            for _ in 0..pre {
                let (_, n) = apply(s.as_ref(), &ws, UnixTime(t), 1, Mode::Force);
                s = n;
            }
            let (o, n) = apply(s.as_ref(), &ws, UnixTime(t), cost, Mode::Conform);
            if !o.allowed {
                prop_assert!(n.is_none());
                if o.retry_after != u64::MAX {
                    let later = UnixTime(t + o.retry_after);
                    let (ok, _) = apply(s.as_ref(), &ws, later, cost, Mode::Check);
                    prop_assert!(ok.allowed);
                    prop_assert!(o.retry_after > 0);
                    let earlier = UnixTime(t + o.retry_after - 1);
                    let (no, _) = apply(s.as_ref(), &ws, earlier, cost, Mode::Check);
                    prop_assert!(!no.allowed);
                } else {
                    prop_assert!(ws.iter().any(|w| cost > w.burst));
                }
            } else {
                prop_assert!(n.is_some());
            }
        }

        /// Several windows behave as the conjunction of each window alone.
        #[test]
        fn multi_window_is_conjunction(
            ws in proptest::collection::vec(window(), 2..4),
            mut times in proptest::collection::vec(0u64..3000, 1..100),
        ) {
            times.sort_unstable();
            let mut s: Option<GcraState> = None;
            let mut singles: Vec<Option<GcraState>> = vec![None; ws.len()];
            for &t in &times {
                let (o, n) = apply(s.as_ref(), &ws, UnixTime(t), 1, Mode::Conform);
                let each: Vec<bool> = ws.iter().zip(&singles).map(|(w, st)| {
                    apply(st.as_ref(), std::slice::from_ref(w), UnixTime(t), 1, Mode::Check).0.allowed
                }).collect();
                prop_assert_eq!(o.allowed, each.iter().all(|a| *a));
                if o.allowed {
                    for (w, st) in ws.iter().zip(singles.iter_mut()) {
                        *st = apply(st.as_ref(), std::slice::from_ref(w), UnixTime(t), 1, Mode::Force).1;
                    }
                    s = n;
                }
            }
        }
    }
}
