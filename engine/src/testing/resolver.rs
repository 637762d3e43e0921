//! [`FakeResolver`]: a [`NameResolver`] whose answers the test sets, and holds back until
//! it releases them — for connects by name without DNS, and Happy Eyeballs races whose
//! timing the test decides.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;

use crate::executor::{Deferred, Resolver};
use crate::names::{AddressFamily, LookupFuture, NameResolver};
use crate::resolve::LookupError;

type Answer = Result<Vec<IpAddr>, LookupError>;

/// A [`NameResolver`] answering from a table the test fills. Clones share the table:
/// install one clone ([`Reactor::set_name_resolver`](crate::Reactor::set_name_resolver)
/// takes an `Rc`) and keep another to steer it.
///
/// - [`FakeResolver::set`]: a name's addresses (either family may be empty: then that
///   lookup fails with [`LookupError::NoAddresses`]); unknown names fail with
///   [`LookupError::Failed`] ("not in the fake resolver").
/// - [`FakeResolver::hold`]: lookups of a name and family wait until
///   [`FakeResolver::release`] answers them.
/// - [`FakeResolver::lookups`]: every lookup asked for, in order;
///   [`FakeResolver::dropped`]: held lookups whose future was dropped (cancelled).
///
/// # Examples
/// ```
/// use std::rc::Rc;
///
/// use ringwork::names::AddressFamily;
/// use ringwork::testing::FakeResolver;
/// use ringwork::{DriverConfig, Reactor, ReactorConfig};
///
/// let fake = FakeResolver::new();
/// fake.set("backend.test", &[], &["127.0.0.1".parse().unwrap()]);
/// let mut reactor = Reactor::new(ReactorConfig::default(), DriverConfig::default())?;
/// reactor.set_name_resolver(Rc::new(fake.clone()));
/// // reactor.handle().connect_host("backend.test", 8080, ..) now goes to 127.0.0.1:8080.
/// # Ok::<(), ringwork::EngineError>(())
/// ```
#[derive(Clone, Default)]
pub struct FakeResolver {
    state: Rc<RefCell<State>>,
}

#[derive(Default)]
struct State {
    answers: HashMap<(String, AddressFamily), Answer>,
    held: Vec<(String, AddressFamily)>,
    waiting: Vec<(String, AddressFamily, Resolver<Answer>)>,
    lookups: Vec<(String, AddressFamily)>,
}

impl FakeResolver {
    /// An empty table.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// `host` has these IPv6 and IPv4 addresses (an empty list: that family has none).
    pub fn set(&self, host: &str, v6: &[IpAddr], v4: &[IpAddr]) {
        let mut state = self.state.borrow_mut();
        for (family, ips) in [(AddressFamily::V6, v6), (AddressFamily::V4, v4)] {
            let answer = if ips.is_empty() {
                Err(LookupError::NoAddresses {
                    host: host.to_owned(),
                })
            } else {
                Ok(ips.to_vec())
            };
            state.answers.insert((host.to_owned(), family), answer);
        }
    }

    /// Lookups of `host` for `family` fail with `reason`.
    pub fn fail(&self, host: &str, family: AddressFamily, reason: &str) {
        self.state.borrow_mut().answers.insert(
            (host.to_owned(), family),
            Err(LookupError::Failed {
                host: host.to_owned(),
                reason: reason.to_owned(),
            }),
        );
    }

    /// Lookups of `host` for `family` wait (from now on) until [`FakeResolver::release`].
    pub fn hold(&self, host: &str, family: AddressFamily) {
        self.state.borrow_mut().held.push((host.to_owned(), family));
    }

    /// Answers the waiting lookups of `host` for `family` (and stops holding them);
    /// returns how many were waiting and still wanted.
    pub fn release(&self, host: &str, family: AddressFamily) -> usize {
        let (waiting, answer) = {
            let mut state = self.state.borrow_mut();
            state.held.retain(|(h, f)| !(h == host && *f == family));
            let (matching, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut state.waiting)
                .into_iter()
                .partition(|(h, f, _)| h == host && *f == family);
            state.waiting = rest;
            (matching, state.answer(host, family))
        };
        let mut answered = 0;
        for (_, _, resolver) in waiting {
            if !resolver.is_canceled() {
                answered += 1;
            }
            resolver.resolve(answer.clone());
        }
        answered
    }

    /// Every lookup asked for so far: host and family, in order.
    #[must_use]
    pub fn lookups(&self) -> Vec<(String, AddressFamily)> {
        self.state.borrow().lookups.clone()
    }

    /// Held lookups whose future was dropped before they were answered.
    #[must_use]
    pub fn dropped(&self) -> usize {
        self.state
            .borrow()
            .waiting
            .iter()
            .filter(|(_, _, r)| r.is_canceled())
            .count()
    }

    /// Held lookups waiting for [`FakeResolver::release`] (dropped ones included).
    #[must_use]
    pub fn waiting(&self) -> usize {
        self.state.borrow().waiting.len()
    }
}

impl State {
    fn answer(&self, host: &str, family: AddressFamily) -> Answer {
        self.answers
            .get(&(host.to_owned(), family))
            .cloned()
            .unwrap_or_else(|| {
                Err(LookupError::Failed {
                    host: host.to_owned(),
                    reason: "not in the fake resolver".into(),
                })
            })
    }
}

impl NameResolver for FakeResolver {
    fn lookup(&self, host: &str, family: AddressFamily) -> LookupFuture {
        let mut state = self.state.borrow_mut();
        state.lookups.push((host.to_owned(), family));
        if state.held.iter().any(|(h, f)| h == host && *f == family) {
            let (deferred, resolver) = Deferred::new();
            state.waiting.push((host.to_owned(), family, resolver));
            return Box::pin(async move { deferred.await.unwrap_or(Err(LookupError::Stopped)) });
        }
        let answer = state.answer(host, family);
        Box::pin(async move { answer })
    }
}

impl std::fmt::Debug for FakeResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.borrow();
        f.debug_struct("FakeResolver")
            .field("names", &state.answers.len())
            .field("waiting", &state.waiting.len())
            .finish_non_exhaustive()
    }
}
