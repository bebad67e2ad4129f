//! advance() throughput for a 10-step playbook of core.* actions, and the memory of 10,000 runs
//! waiting on approvals. Prints runs/s, per-step overhead and bytes per waiting run.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use garrison_playbook::{
    advance, validate, ActionRegistry, Effect, Event, Playbook, RunState, RunStatus,
};
use serde_json::json;
use std::time::Instant;

fn playbook() -> Playbook {
    let mut y = String::from("name: ten\ninputs:\n  ip: {type: ip}\nsteps:\n");
    y.push_str("  - {id: s0, action: core.set, with: {ip: \"{{ inputs.ip }}\", n: 0}}\n");
    for i in 1..10 {
        let action = if i % 3 == 0 { "core.log" } else { "core.set" };
        let with = if action == "core.log" {
            format!(
                "{{message: \"step {i} saw {{{{ steps.s{}.status }}}}\"}}",
                i - 1
            )
        } else {
            format!("{{ip: \"{{{{ inputs.ip }}}}\", n: {i}}}")
        };
        y.push_str(&format!(
            "  - {{id: s{i}, depends_on: [s{}], action: {action}, with: {with}}}\n",
            i - 1
        ));
    }
    let (p, errs) = validate(&y, &ActionRegistry::with_core());
    assert!(errs.is_empty(), "{errs:?}");
    p.expect("playbook")
}

fn one_run(pb: &Playbook, id: &str) -> RunState {
    let now = jiff::Timestamp::UNIX_EPOCH;
    let mut st =
        RunState::new(id, pb, 1, &json!({"ip": "192.0.2.1"}), json!({}), now).expect("state");
    let mut effects = advance(pb, &mut st, now, Event::Start);
    while let Some(e) = effects.pop() {
        if let Effect::ExecuteAction {
            step,
            item,
            attempt,
            input,
            ..
        } = e
        {
            effects.extend(advance(
                pb,
                &mut st,
                now,
                Event::ActionFinished {
                    step,
                    item,
                    attempt,
                    result: Ok(input),
                    logs: vec![],
                },
            ));
        }
    }
    assert_eq!(st.status, RunStatus::Succeeded);
    st
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn figures(pb: &Playbook) {
    let n = 2000;
    let t = Instant::now();
    for i in 0..n {
        std::hint::black_box(one_run(pb, &format!("r{i}")));
    }
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "advance: {:.0} runs/s on one thread, {:.1} µs per step (10-step core.* playbook, templates rendered)",
        n as f64 / secs,
        secs / n as f64 / 10.0 * 1e6
    );

    let (wait_pb, _) = validate(
        "name: w\ninputs:\n  host: {type: string}\nsteps:\n  - id: ask\n    approval: {message: 'isolate {{ inputs.host }}?', approvers: {roles: [responder]}, timeout: 4h, default: reject}\n  - id: go\n    depends_on: [ask]\n    action: core.set\n    with: {}\n",
        &ActionRegistry::with_core(),
    );
    let wait_pb = wait_pb.expect("pb");
    let before = rss_kib();
    let now = jiff::Timestamp::UNIX_EPOCH;
    let mut states = Vec::with_capacity(10_000);
    let mut bytes = 0usize;
    for i in 0..10_000 {
        let mut st = RunState::new(
            format!("run-{i:05}"),
            &wait_pb,
            1,
            &json!({"host": format!("ws-{i}")}),
            json!({"alert": i}),
            now,
        )
        .expect("st");
        advance(&wait_pb, &mut st, now, Event::Start);
        bytes += serde_json::to_vec(&st).map(|v| v.len()).unwrap_or(0);
        states.push(st);
    }
    let after = rss_kib();
    eprintln!(
        "10,000 runs waiting on an approval: {:.1} MiB RSS growth in memory, {:.1} MiB as stored JSON ({} bytes per run)",
        (after.saturating_sub(before)) as f64 / 1024.0,
        bytes as f64 / 1048576.0,
        bytes / 10_000
    );
    drop(states);
}

fn bench(c: &mut Criterion) {
    let pb = playbook();
    figures(&pb);
    let mut g = c.benchmark_group("advance");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ten_step_core_run", |b| b.iter(|| one_run(&pb, "r")));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
