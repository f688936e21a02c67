//! Time budgets for DNS-based checks, without a runtime in the engine.
//!
//! The engine has no timers of its own (it does no I/O and pulls in no async runtime), so the
//! binary injects one through [`Timer`]: `sleep(d)` is a future that completes after `d`.
//! [`within`] races a check against that sleep, and [`Bounded`] wraps a [`Resolver`] so each
//! query gets the same race (DNSBL lists are asked in parallel, so a per-query bound is the
//! bound of the whole step, and lists that did answer still count). The default [`NoTimer`]
//! never fires: without a timer the only limits are the resolver's own per-query timeouts.
//! Called by [`super::SenderChecks`] only; tests inject timers that fire at once or never.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use crate::dns::{DnsError, DnsFuture, Mx, Resolver, Txt};

/// A boxed sleep future.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Something that can wait: the binary implements it with `tokio::time::sleep`.
pub trait Timer: Send + Sync + fmt::Debug {
    /// A future that completes once `d` has passed.
    fn sleep(&self, d: Duration) -> Sleep;
}

/// A timer that never fires: no budget beyond the resolver's own timeouts.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTimer;

impl Timer for NoTimer {
    fn sleep(&self, _d: Duration) -> Sleep {
        Box::pin(std::future::pending())
    }
}

/// Runs `fut` for at most `budget` of `timer`'s time: `None` when the budget ran out first.
pub async fn within<F: Future>(timer: &dyn Timer, budget: Duration, fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut sleep = timer.sleep(budget);
    std::future::poll_fn(move |cx| {
        // The check first: an answer that is ready when the budget ends still counts.
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// A resolver whose every query ends with [`DnsError::Timeout`] once `budget` has passed.
#[derive(Debug, Clone, Copy)]
pub struct Bounded<'r> {
    pub inner: &'r dyn Resolver,
    pub timer: &'r dyn Timer,
    pub budget: Duration,
}

impl Bounded<'_> {
    fn bound<'a, T: Send + 'a>(&'a self, fut: DnsFuture<'a, T>) -> DnsFuture<'a, T> {
        Box::pin(async move {
            within(self.timer, self.budget, fut)
                .await
                .unwrap_or(Err(DnsError::Timeout))
        })
    }
}

impl Resolver for Bounded<'_> {
    fn txt<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Txt> {
        self.bound(self.inner.txt(name))
    }
    fn a<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Ipv4Addr> {
        self.bound(self.inner.a(name))
    }
    fn aaaa<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Ipv6Addr> {
        self.bound(self.inner.aaaa(name))
    }
    fn mx<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Mx> {
        self.bound(self.inner.mx(name))
    }
    fn ptr<'a>(&'a self, ip: IpAddr) -> DnsFuture<'a, String> {
        self.bound(self.inner.ptr(ip))
    }
}

/// The resolver of a policy built without one: every query fails (SPF temperror, DNSBL "not
/// listed", reverse DNS temporary failure), so a forgotten resolver never passes as "no
/// records".
#[derive(Debug, Clone, Copy, Default)]
pub struct NoResolver;

fn unconfigured<T: Send + 'static>() -> DnsFuture<'static, T> {
    Box::pin(std::future::ready(Err(DnsError::ServFail(
        "no DNS resolver configured".to_string(),
    ))))
}

impl Resolver for NoResolver {
    fn txt<'a>(&'a self, _: &'a str) -> DnsFuture<'a, Txt> {
        unconfigured()
    }
    fn a<'a>(&'a self, _: &'a str) -> DnsFuture<'a, Ipv4Addr> {
        unconfigured()
    }
    fn aaaa<'a>(&'a self, _: &'a str) -> DnsFuture<'a, Ipv6Addr> {
        unconfigured()
    }
    fn mx<'a>(&'a self, _: &'a str) -> DnsFuture<'a, Mx> {
        unconfigured()
    }
    fn ptr<'a>(&'a self, _: IpAddr) -> DnsFuture<'a, String> {
        unconfigured()
    }
}

/// Test doubles, like [`crate::dns::FakeResolver`]: a resolver that never answers and a timer
/// that fires at once.
pub mod testing {
    use super::*;

    /// Fires at once, whatever the duration: every budget is already spent.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct ImmediateTimer;

    impl Timer for ImmediateTimer {
        fn sleep(&self, _d: Duration) -> Sleep {
            Box::pin(std::future::ready(()))
        }
    }

    /// Every query stays pending forever (a dead DNS server without a client-side timeout).
    #[derive(Debug, Clone, Copy, Default)]
    pub struct SilentResolver;

    fn never<T: Send + 'static>() -> DnsFuture<'static, T> {
        Box::pin(std::future::pending())
    }

    impl Resolver for SilentResolver {
        fn txt<'a>(&'a self, _: &'a str) -> DnsFuture<'a, Txt> {
            never()
        }
        fn a<'a>(&'a self, _: &'a str) -> DnsFuture<'a, Ipv4Addr> {
            never()
        }
        fn aaaa<'a>(&'a self, _: &'a str) -> DnsFuture<'a, Ipv6Addr> {
            never()
        }
        fn mx<'a>(&'a self, _: &'a str) -> DnsFuture<'a, Mx> {
            never()
        }
        fn ptr<'a>(&'a self, _: IpAddr) -> DnsFuture<'a, String> {
            never()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{ImmediateTimer as Instant, SilentResolver};
    use super::*;
    use crate::dns::{FakeResolver, Lookup, ZoneRecord, block_on};

    #[test]
    fn a_ready_answer_beats_an_expired_budget() {
        let v = block_on(within(&Instant, Duration::ZERO, async { 7 }));
        assert_eq!(v, Some(7));
        let v = block_on(within(
            &Instant,
            Duration::ZERO,
            std::future::pending::<u8>(),
        ));
        assert_eq!(v, None);
        let v = block_on(within(&NoTimer, Duration::ZERO, async { 8 }));
        assert_eq!(v, Some(8));
    }

    #[test]
    fn bounded_resolver_times_out_silent_queries_only() {
        let mut z = FakeResolver::new();
        z.add("a.example", ZoneRecord::A("192.0.2.1".parse().unwrap()));
        let b = Bounded {
            inner: &z,
            timer: &Instant,
            budget: Duration::ZERO,
        };
        assert_eq!(block_on(b.a("a.example")).unwrap().records().len(), 1);
        assert_eq!(block_on(b.a("b.example")), Ok(Lookup::NxDomain));
        let silent = Bounded {
            inner: &SilentResolver,
            ..b
        };
        assert_eq!(block_on(silent.txt("a.example")), Err(DnsError::Timeout));
        assert!(matches!(
            block_on(NoResolver.mx("a.example")),
            Err(DnsError::ServFail(_))
        ));
    }
}
