//! The goose attack for `http.*` operations (the `http` feature).

use std::sync::Arc;

use std::time::Duration;

use anyhow::Context;
use goose::GooseAttack;
use goose::config::{GooseDefault, GooseDefaultType};
use goose::goose::{GooseMethod, GooseRequest, GooseUser, Scenario as GooseScenario, Transaction, TransactionResult};
use tokio::time::Instant;

use crate::scenario::{Load, Operation, Scenario};
use crate::shard::Shard;
use crate::stats::{Answer, Recorder};
use crate::workload::Workload;

/// What a goose user keeps between requests.
#[derive(Clone)]
struct UserState {
    workload: Workload,
    sent: u64,
}

/// Goose's test plan for closed-model stages: each stage's users, held for its duration.
fn test_plan(stages: &[crate::scenario::ClosedStage]) -> String {
    let mut steps: Vec<String> = Vec::new();
    for s in stages {
        let secs = s.duration.as_secs_f64().ceil().max(1.0) as u64;
        steps.push(format!("{},0s", s.concurrency));
        steps.push(format!("{},{secs}s", s.concurrency));
    }
    steps.push("0,0s".into());
    steps.join(";")
}

fn render(template: &str, key: &str, n: u64) -> String {
    template.replace("{key}", key).replace("{n}", &n.to_string())
}

/// Sends one HTTP operation for `user` and records it; errors are recorded, not raised,
/// so goose keeps the user running.
async fn transaction(
    user: &mut GooseUser,
    scenario: &Scenario,
    stats: &Recorder,
    start: Instant,
    warmup: Duration,
) -> TransactionResult {
    if user.get_session_data::<UserState>().is_none() {
        let stream = 0x4854_5450_0000_0000 | user.weighted_users_index as u64;
        let workload = Workload::new(scenario, stream, Shard::WHOLE)
            .map_err(|e| Box::new(goose::goose::TransactionError::Custom(format!("{e:#}"))))?;
        user.set_session_data(UserState { workload, sent: 0 });
    }
    let (op_index, key, n) = {
        let Some(state) = user.get_session_data_mut::<UserState>() else {
            return Ok(());
        };
        let request = state.workload.next_request();
        state.sent += 1;
        (
            request.op,
            String::from_utf8_lossy(&request.key).into_owned(),
            state.sent,
        )
    };
    let op: &Operation = &scenario.operations[op_index];
    let path = render(op.path.as_deref().unwrap_or("/"), &key, n);
    let method = if op.op == "http.post" {
        GooseMethod::Post
    } else {
        GooseMethod::Get
    };
    let mut builder = user.get_request_builder(&method, &path)?;
    for (name, value) in &op.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    if let Some(body) = &op.body {
        builder = builder.body(render(body, &key, n));
    }
    let request = GooseRequest::builder()
        .method(method)
        .path(path.as_str())
        .name(op.op.as_str())
        .set_request_builder(builder)
        .build();
    let sent = Instant::now();
    let result = user.request(request).await;
    let latency = sent.elapsed();
    let code = match &result {
        Ok(response) => match &response.response {
            Ok(r) if r.status().is_success() => "OK",
            Ok(r) if r.status().is_client_error() => "HTTP_4XX",
            Ok(r) if r.status().is_server_error() => "HTTP_5XX",
            Ok(_) => "HTTP_OTHER",
            Err(_) => "HTTP_ERROR",
        },
        Err(_) => "HTTP_ERROR",
    };
    if let Some(at) = (sent - start).checked_sub(warmup) {
        let mut s = stats.lock();
        s.arrival(at, false);
        s.response(Answer {
            op: op_index,
            at,
            corrected: latency,
            service: latency,
            lag: Duration::ZERO,
            code,
            expected: None,
        });
    }
    Ok(())
}

type TransactionFuture<'r> = std::pin::Pin<Box<dyn std::future::Future<Output = TransactionResult> + Send + 'r>>;

/// Pins down the higher-ranked signature goose wants, which a closure alone does not
/// infer.
fn transaction_function<F>(f: F) -> goose::goose::TransactionFunction
where
    F: for<'r> Fn(&'r mut GooseUser) -> TransactionFuture<'r> + Send + Sync + 'static,
{
    Arc::new(f)
}

/// Runs the HTTP part of `scenario` against `base` (`http://host:port`) until its load
/// ends, recording into `stats`.
pub async fn run(scenario: Scenario, base: &str, stats: Recorder, start: Instant) -> anyhow::Result<()> {
    let warmup = scenario.warmup();
    let scenario = Arc::new(scenario);
    let function = {
        let (scenario, stats) = (scenario.clone(), stats.clone());
        transaction_function(move |user| {
            let (scenario, stats) = (scenario.clone(), stats.clone());
            Box::pin(async move { transaction(user, &scenario, &stats, start, warmup).await })
        })
    };
    let mut goose_scenario =
        GooseScenario::new("loadtest").register_transaction(Transaction::new(function).set_name("http"));
    let mut attack = GooseAttack::initialize_with_config(Default::default())
        .context("setting up goose")?
        .set_default(GooseDefault::Host, base)?
        // Latencies are recorded by `transaction` into loadtest's own histograms; goose's
        // metrics (and their printing) are not needed.
        .set_default(GooseDefault::NoMetrics, true)?
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::Quiet, 1usize)?;
    match &scenario.load {
        Load::Closed { stages, think_time, .. } => {
            attack = attack.set_default(GooseDefault::TestPlan, test_plan(stages).as_str())?;
            if !think_time.is_zero() {
                goose_scenario = goose_scenario.set_wait_time(*think_time, *think_time)?;
            }
        }
        Load::Open {
            stages, max_in_flight, ..
        } => {
            let rate = stages
                .iter()
                .map(|s| s.rate.max(s.ramp_to.unwrap_or(0.0)))
                .fold(0.0, f64::max);
            let secs = scenario.duration().as_secs_f64().ceil().max(1.0) as usize;
            attack = attack
                .set_default(GooseDefault::Users, (*max_in_flight).clamp(1, 256))?
                .set_default(GooseDefault::IncreaseRate, "1000")?
                .set_default(GooseDefault::RunTime, secs)?
                .set_default(GooseDefault::ThrottleRequests, (rate.ceil() as usize).max(1))?;
        }
    }
    attack
        .register_scenario(goose_scenario)
        .execute()
        .await
        .context("running the goose attack")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::split;

    fn scenario(load: &str) -> Scenario {
        let yaml = format!(
            "name: t\nload: {load}\nkeyspaces: {{k: {{count: 10}}}}\noperations:\n  \
             - {{op: keyvalue.get, keys: k, weight: 3}}\n  - {{op: http.get, path: '/x/{{key}}', keys: k, weight: 1}}\n"
        );
        Scenario::parse(&yaml, std::path::Path::new("t.yaml")).unwrap()
    }

    #[test]
    fn split_shares_the_load_by_weight_and_zeroes_the_other_side() {
        let (grpc, http) = split(&scenario("{model: open, stages: [{duration: 1s, rate: 400}]}"));
        let (grpc, http) = (grpc.unwrap(), http.unwrap());
        assert_eq!(grpc.operations[1].weight, 0);
        assert_eq!(http.operations[0].weight, 0);
        let rate = |s: &Scenario| match &s.load {
            Load::Open { stages, .. } => stages[0].rate,
            Load::Closed { .. } => unreachable!(),
        };
        assert_eq!((rate(&grpc), rate(&http)), (300.0, 100.0));
        let (grpc, http) = split(&scenario("{model: closed, stages: [{duration: 1s, concurrency: 8}]}"));
        let clients = |s: &Scenario| match &s.load {
            Load::Closed { stages, .. } => stages[0].concurrency,
            Load::Open { .. } => unreachable!(),
        };
        assert_eq!((clients(&grpc.unwrap()), clients(&http.unwrap())), (6, 2));
    }

    #[test]
    fn templates_and_test_plans() {
        assert_eq!(render("/items/{key}?n={n}", "k:7", 3), "/items/k:7?n=3");
        let stages = vec![
            crate::scenario::ClosedStage {
                duration: Duration::from_millis(1500),
                concurrency: 2,
            },
            crate::scenario::ClosedStage {
                duration: Duration::from_secs(3),
                concurrency: 5,
            },
        ];
        assert_eq!(test_plan(&stages), "2,0s;2,2s;5,0s;5,3s;0,0s");
    }
}
