//! Model-based tests (issue 19): a deliberately simple reference model of
//! one decision's life, written from DESIGN.md and not from `server/core`,
//! and random command sequences run (a) through the pure core (`decide` +
//! `apply`) and (b) through the real server over gRPC, comparing status,
//! approvals, answers, delivery, events written and each command's result
//! with the model after every step.
//!
//! The model is in `tests/model/reference.rs`, the two runs in
//! `core_run.rs` and `grpc_run.rs`; the tests stay here.

mod common;
#[path = "model/core_run.rs"]
mod core_run;
#[path = "model/grpc_run.rs"]
mod grpc_run;
#[path = "model/reference.rs"]
mod reference;

use common::*;
use core_run::run_core;
use grpc_run::run_server;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reference::{api_cmd, core_cmd, shape, PEOPLE};

/// 512 cases unless `PROPTEST_CASES` says otherwise (`make fuzz`).
fn core_cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(512)
}

proptest! {
    #![proptest_config(Config { cases: core_cases(), ..Config::default() })]

    #[test]
    fn the_core_follows_the_reference_model(
        shape in shape(),
        cmds in prop::collection::vec(core_cmd(), 0..40),
    ) {
        run_core(shape, &cmds)?;
    }
}

#[test]
fn the_server_follows_the_reference_model_over_grpc() {
    // Fewer cases than the core: each step is a round trip and a commit.
    let cases = std::env::var("MODEL_GRPC_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(24);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = Server::start("");
    let clients: Vec<_> = rt.block_on(async {
        let mut out = Vec::new();
        for (name, roles) in PEOPLE {
            out.push(server.client(name, roles).await);
        }
        out
    });
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let strategy = (shape(), prop::collection::vec(api_cmd(), 0..16));
    let result = runner.run(&strategy, |(shape, cmds)| {
        rt.block_on(run_server(&clients, shape, &cmds))
    });
    if let Err(e) = result {
        panic!("{e}\nserver log:\n{}", server.stderr());
    }
}
