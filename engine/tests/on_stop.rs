//! `Reactor::on_stop`: hooks run once when `run` returns, on a lone reactor and on every core
//! of a runtime (where they are the only way to read a core's final statistics).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringwork::{DriverConfig, Reactor, ReactorConfig, Runtime};

#[test]
fn hooks_run_in_order_once_when_run_returns() {
    let mut reactor = Reactor::new(ReactorConfig::default(), DriverConfig::default()).unwrap();
    let ran = Rc::new(RefCell::new(Vec::new()));
    for n in 0..3 {
        let ran = Rc::clone(&ran);
        reactor.on_stop(move |reactor| {
            assert!(reactor.is_finished());
            ran.borrow_mut().push(n);
            if n == 1 {
                panic!("a panicking hook does not stop the others");
            }
        });
    }
    reactor.shutdown(Duration::ZERO);
    reactor.run().unwrap();
    assert_eq!(*ran.borrow(), [0, 1, 2]);
    assert_eq!(reactor.stats().panics, 1);
    // A second run has no hooks left.
    reactor.run().unwrap();
    assert_eq!(ran.borrow().len(), 3);
}

#[test]
fn every_runtime_core_reports_its_final_stats() {
    let runtime = Runtime::builder().cores(2).pin(false).build().unwrap();
    let shutdown = runtime.shutdown_handle();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&reports);
    runtime
        .run(move |reactor| {
            let sink = Arc::clone(&sink);
            reactor.on_stop(move |reactor| {
                let turns = reactor.stats().turns;
                sink.lock().unwrap().push((reactor.core_index(), turns));
            });
            // Handled in this core's first turn, after init returns.
            shutdown.shutdown(Duration::ZERO);
            Ok(())
        })
        .unwrap();
    let mut reports = reports.lock().unwrap().clone();
    reports.sort_unstable();
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert_eq!((reports[0].0, reports[1].0), (0, 1));
    assert!(reports.iter().all(|&(_, turns)| turns >= 1), "{reports:?}");
}
