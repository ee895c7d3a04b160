//! The scenario file: what to send, how fast, and what counts as passing.
//!
//! Unknown keys are errors; every error names `file:line:column` (syntax and types) or
//! the field path (meaning), with the expected form.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use prism_proxy::validation::Problems;
use serde::{Deserialize, Serialize};

pub mod feed;
mod load;
mod part;

pub use part::{Layout, Part, RunPart, Span};

use crate::threshold::Threshold;
use crate::workload::OpKind;

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Every problem found, each with `file:line:column` where the file shows it.
    #[error("{0}")]
    Invalid(Problems),
    #[error("--set {set}: {message}")]
    Override { set: String, message: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// Seeds every random choice (keys, sizes, operation mix).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Where to send; absent or `embedded`: a proxy with memstore started in-process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// One scenario: its load and operations here. Several at once: under `scenarios`.
    #[serde(default = "Load::none", skip_serializing_if = "Load::is_none")]
    pub load: Load,
    #[serde(default)]
    pub keyspaces: BTreeMap<String, Keyspace>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<Operation>,
    /// Several scenarios running at the same time, each with its own load, start and
    /// operations (instead of `load` and `operations`); they share the target, keyspaces
    /// and seed. Results are reported per scenario and in total.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "part::deserialize_parts"
    )]
    pub scenarios: BTreeMap<String, Part>,
    /// Pass/fail rules, checked on the whole run; see [`crate::threshold`].
    #[serde(default)]
    pub thresholds: Vec<String>,
    /// The share of requests sent in a client span with W3C `traceparent` (`1%`, `0.01`),
    /// so the target's spans join them; exported with the `OTEL_EXPORTER_OTLP_*` settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_sample: Option<String>,
    /// Descriptors of the `grpc.*` operations' methods: `.proto` files; without them the
    /// server's reflection is asked when the run starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<crate::grpc::Protos>,
}

fn default_seed() -> u64 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Target {
    Named(NamedTarget),
    Remote(RemoteTarget),
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NamedTarget {
    Embedded,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteTarget {
    /// `http://host:port`, or `https://host:port` for TLS.
    pub endpoint: String,
    /// PEM file of the authority that signed the server's certificate (https only; the
    /// system's roots when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The name the server's certificate must carry, when it differs from the endpoint's
    /// host (https only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// HTTP/2 connections to spread requests over.
    #[serde(default = "default_channels")]
    pub channels: usize,
    /// Per-request deadline.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// Extra gRPC metadata sent with every request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Where `http.*` operations go (`http://host:port`): for example the proxy's admin
    /// listener. Needed when the scenario has HTTP operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_endpoint: Option<String>,
    /// A bearer token sent as `authorization: Bearer ...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// Read the token from this environment variable (never written to run.json).
    BearerEnv(String),
    /// Read the token from this file (trailing whitespace trimmed).
    BearerFile(PathBuf),
}

impl RemoteTarget {
    /// The TLS settings for an https endpoint, the CA file read now.
    pub fn tls(&self) -> Result<prism_proxy::client::ClientTls, String> {
        let ca_pem = match &self.ca_file {
            Some(path) => {
                Some(std::fs::read(path).map_err(|e| format!("target.ca_file: cannot read {}: {e}", path.display()))?)
            }
            None => None,
        };
        Ok(prism_proxy::client::ClientTls {
            ca_pem,
            server_name: self.server_name.clone(),
        })
    }
}

impl Auth {
    /// The token, read now.
    pub fn token(&self) -> Result<String, String> {
        match self {
            Auth::BearerEnv(var) => {
                std::env::var(var).map_err(|_| format!("target.auth.bearer_env: environment variable {var} is not set"))
            }
            Auth::BearerFile(path) => std::fs::read_to_string(path)
                .map(|t| t.trim().to_string())
                .map_err(|e| format!("target.auth.bearer_file: cannot read {}: {e}", path.display())),
        }
    }
}

fn default_namespace() -> String {
    "default".into()
}
fn default_channels() -> usize {
    4
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// How the load is offered: `model: open` (arrivals at a rate) or `model: closed` (a
/// number of clients).
// Read through a flat file form (load.rs) so errors carry their place; written and
// described (JSON Schema) as this tagged enum.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(tag = "model", rename_all = "snake_case", deny_unknown_fields)]
pub enum Load {
    /// Arrivals at a rate, whatever the server does: latency counts from each request's
    /// intended send time.
    Open {
        stages: Vec<OpenStage>,
        /// Requests in flight at most; arrivals beyond it are counted as dropped.
        #[serde(default = "default_max_in_flight")]
        max_in_flight: usize,
        /// Excluded from the results.
        #[serde(default, with = "humantime_serde")]
        #[schemars(with = "String")]
        warmup: Duration,
    },
    /// A fixed number of clients, each sending its next request when the last returned.
    Closed {
        stages: Vec<ClosedStage>,
        #[serde(default, with = "humantime_serde")]
        #[schemars(with = "String")]
        think_time: Duration,
        #[serde(default, with = "humantime_serde")]
        #[schemars(with = "String")]
        warmup: Duration,
    },
}

fn default_max_in_flight() -> usize {
    10_000
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenStage {
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub duration: Duration,
    /// Requests per second at the start of the stage.
    pub rate: f64,
    /// Requests per second at the end (linear ramp); default: `rate`.
    #[serde(default)]
    pub ramp_to: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClosedStage {
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub duration: Duration,
    pub concurrency: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Keyspace {
    /// Generated keys are `<prefix><n>`.
    #[serde(default)]
    pub prefix: String,
    /// How many keys; with `file`, at most its rows (default: all of them).
    #[serde(default)]
    pub count: u64,
    #[serde(default)]
    pub distribution: Distribution,
    /// Keys (and values) from a file instead of generated ones: `.csv` with a header
    /// naming `key` (and optionally `value`), or `.jsonl` lines of `{"key", "value"}`.
    /// Relative to the scenario file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// The file's rows, read when the scenario is loaded.
    #[serde(skip)]
    #[schemars(skip)]
    pub feed: Option<feed::Feed>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Distribution {
    #[default]
    Uniform,
    /// Popular keys first; theta in (0, 10], 0.99 is the YCSB default.
    Zipfian {
        #[serde(default = "default_theta")]
        theta: f64,
    },
    /// Keys in order, wrapping around.
    Sequential,
}

fn default_theta() -> f64 {
    0.99
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    /// One of [`crate::workload::OPERATIONS`].
    pub op: String,
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Keyspace name (key-value operations) or topic / queue / stream name.
    #[serde(default)]
    pub keys: Option<String>,
    /// Payload size in bytes: a number, or `{min, max}` for uniform sizes.
    #[serde(default)]
    pub value_size: Option<ValueSize>,
    /// Keys per call for `keyvalue.batch_*`, keys per page for `keyvalue.scan`, messages
    /// per receive for `queue.receive_ack`, events per append for `timeseries.append` and
    /// `timeseries.append_columns`.
    #[serde(default)]
    pub batch: Option<u32>,
    /// `pubsub.publish`: subscribers started before the run; each delivery's
    /// publish-to-delivery latency is reported as `pubsub.delivery`.
    #[serde(default)]
    pub subscribers: Option<u32>,
    /// `http.*`: the request path, joined to the HTTP endpoint; `{key}` is replaced by a
    /// key of `keys` and `{n}` by the user's request number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `http.*`: extra request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// `http.post`: the request body, with the same `{key}` and `{n}` placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `grpc.*`: the method, `package.Service/Method`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// `grpc.*`: the request message in proto3's JSON form (written as YAML), whose
    /// strings may hold `{key}`, `{n}`, `{uuid}`, `{bytes:N}`, `{now_ms}`; default `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<serde_json::Value>,
    /// `grpc.*`: gRPC metadata added to the target's on each call.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// `grpc.server_stream`: close the stream after this many messages (stream churn:
    /// open, read N, close); default: read until the server ends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<u32>,
    /// The compiled call, once the method's descriptors are known.
    #[serde(skip)]
    #[schemars(skip)]
    pub call: Option<crate::grpc::SharedCall>,
}

fn default_weight() -> u32 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ValueSize {
    Fixed(usize),
    Uniform { min: usize, max: usize },
}

/// The synthetic operation under which subscribers report publish-to-delivery latency.
pub const DELIVERY_OP: &str = "pubsub.delivery";

/// Suffixes of a server stream's synthetic operations: the time from opening the stream
/// to its first message, and the time each message took after the one before (the first:
/// after the opening).
pub const FIRST_MESSAGE: &str = ":first_message";
pub const MESSAGE: &str = ":message";

/// Whether a reported operation measures something other than requests (deliveries,
/// stream messages): not counted in the totals.
pub fn is_synthetic(name: &str) -> bool {
    name == DELIVERY_OP || name.ends_with(FIRST_MESSAGE) || name.ends_with(MESSAGE)
}

impl Operation {
    /// The name results are reported under: the operation, with the path of an HTTP one
    /// (`http.get:/healthz`) or the method of a gRPC one (`grpc.unary:pkg.Svc/Get`), since a
    /// scenario often has several.
    pub fn reported_name(&self) -> String {
        match (&self.path, &self.method) {
            (Some(path), _) if crate::workload::is_http(&self.op) => format!("{}:{path}", self.op),
            (_, Some(method)) if crate::workload::is_grpc(&self.op) => format!("{}:{method}", self.op),
            _ => self.op.clone(),
        }
    }
}

impl Scenario {
    /// The JSON Schema of scenario files, for editors (`loadtest schema`).
    pub fn json_schema() -> String {
        let schema = schemars::schema_for!(Scenario);
        serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
    }

    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Scenario::parse(&text, path)
    }

    /// Applies `--set path=value` overrides (`load.stages[0].rate=2000`,
    /// `target.endpoint=http://host:50051`); the value is read as YAML. The result is
    /// validated again.
    pub fn with_overrides(self, sets: &[String], path: &Path) -> Result<Scenario, ScenarioError> {
        if sets.is_empty() {
            return Ok(self);
        }
        let err = |set: &str, message: String| ScenarioError::Override {
            set: set.to_string(),
            message,
        };
        let mut doc = serde_yaml::to_value(&self).map_err(|e| err("", e.to_string()))?;
        for set in sets {
            let (key, raw) = set
                .split_once('=')
                .ok_or_else(|| err(set, "expected path=value, e.g. load.stages[0].rate=2000".into()))?;
            let value: serde_yaml::Value =
                serde_yaml::from_str(raw).map_err(|e| err(set, format!("the value is not YAML: {e}")))?;
            let slot = locate(&mut doc, key).map_err(|m| err(set, m))?;
            *slot = value;
        }
        let scenario: Scenario = serde_yaml::from_value(doc).map_err(|e| err(&sets.join(" "), e.to_string()))?;
        scenario.checked(path, None)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = serde_yaml::from_str(text)
            .map_err(|e| ScenarioError::Invalid(Problems::from_yaml_error(path.display().to_string(), &e, text)))?;
        scenario.checked(path, Some(text))
    }

    /// The scenario if it has no meaning errors; all of them otherwise, located in
    /// `text` (the file as written) when there is one.
    fn checked(mut self, path: &Path, text: Option<&str>) -> Result<Scenario, ScenarioError> {
        let mut problems = Problems::new(path.display().to_string());
        self.read_feeds(path, &mut problems);
        self.problems(&mut problems);
        if let Some(pool) = self.compile_protos(path, &mut problems)
            && problems.is_empty()
        {
            self.bind_grpc(&pool, &mut problems);
        }
        if let Some(text) = text {
            problems = problems.locate_in(text);
        }
        problems.into_result().map_err(ScenarioError::Invalid)?;
        Ok(self)
    }

    /// The descriptors of `grpc.protos`, compiled; none when there are no files.
    fn compile_protos(&self, path: &Path, p: &mut Problems) -> Option<prost_reflect::DescriptorPool> {
        let protos = self.grpc.as_ref().filter(|g| !g.protos.is_empty())?;
        let base = path.parent().unwrap_or(Path::new("."));
        match crate::grpc::compile(protos, base) {
            Ok(pool) => Some(pool),
            Err(e) => {
                p.add("grpc.protos", e);
                None
            }
        }
    }

    /// Whether the `grpc.*` operations need descriptors from the server's reflection.
    pub fn needs_reflection(&self) -> bool {
        self.part_refs()
            .iter()
            .flat_map(|p| p.operations)
            .any(|o| crate::workload::is_grpc(&o.op) && o.call.is_none())
    }

    /// The services the `grpc.*` operations call.
    pub fn grpc_services(&self) -> Vec<String> {
        let mut services: Vec<String> = self
            .part_refs()
            .iter()
            .flat_map(|p| p.operations)
            .filter(|o| crate::workload::is_grpc(&o.op))
            .filter_map(|o| o.method.as_deref().and_then(crate::grpc::service_of))
            .map(str::to_string)
            .collect();
        services.sort();
        services.dedup();
        services
    }

    /// Binds the `grpc.*` operations to the descriptors the server's reflection gave;
    /// problems are located in the scenario file at `path`, read again for it.
    pub fn bind_reflected(&mut self, pool: &prost_reflect::DescriptorPool, path: &Path) -> Result<(), ScenarioError> {
        let mut problems = Problems::new(path.display().to_string());
        self.bind_grpc(pool, &mut problems);
        if let Ok(text) = std::fs::read_to_string(path) {
            problems = problems.locate_in(&text);
        }
        problems.into_result().map_err(ScenarioError::Invalid)
    }

    /// Resolves each `grpc.*` operation's method in `pool` and compiles its request.
    fn bind_grpc(&mut self, pool: &prost_reflect::DescriptorPool, p: &mut Problems) {
        for (list, operations) in self.operation_lists_mut() {
            for (i, o) in operations.iter_mut().enumerate() {
                bind_operation(pool, &format!("{list}[{i}]"), o, p);
            }
        }
    }

    /// Reads every keyspace's `file` (relative to the scenario at `path`); a keyspace
    /// without `count` takes the file's number of rows.
    fn read_feeds(&mut self, path: &Path, p: &mut Problems) {
        let base = path.parent().unwrap_or(Path::new("."));
        for (name, k) in &mut self.keyspaces {
            let Some(file) = &k.file else { continue };
            match feed::read(&base.join(file)) {
                Ok(feed) => {
                    let rows = feed.0.len() as u64;
                    if k.count == 0 {
                        k.count = rows;
                    } else if k.count > rows {
                        p.add(
                            format!("keyspaces.{name}.count"),
                            format!("{} is more than the {rows} rows of {}", k.count, file.display()),
                        );
                    }
                    k.feed = Some(feed);
                }
                Err(e) => p.add(format!("keyspaces.{name}.file"), e),
            }
        }
    }

    /// Every meaning error at once (types were checked by the parser), into `p`.
    pub fn problems(&self, p: &mut Problems) {
        if self.name.trim().is_empty() {
            p.add("name", "must not be empty");
        }
        self.parts_problems(p);
        if let Some(Target::Remote(r)) = &self.target {
            r.problems(p);
        }
        for (name, k) in &self.keyspaces {
            if k.count == 0 && k.file.is_none() {
                p.add(format!("keyspaces.{name}.count"), "must be at least 1");
            }
            if k.file.is_some() && !k.prefix.is_empty() {
                p.add(
                    format!("keyspaces.{name}.prefix"),
                    "a file's keys are used as written: drop `prefix` or `file`",
                );
            }
            if let Distribution::Zipfian { theta } = k.distribution
                && !(theta > 0.0 && theta <= 10.0)
            {
                p.add(
                    format!("keyspaces.{name}.distribution.theta"),
                    format!("{theta} is not in (0, 10]"),
                );
            }
        }
        for part in self.part_refs() {
            let (list, load, operations) = (part.operations_path(), part.load, part.operations);
            if operations.is_empty() {
                p.add(list.clone(), "at least one operation is needed");
            }
            if operations.iter().all(|o| o.weight == 0) && !operations.is_empty() {
                p.add(list.clone(), "at least one weight must be above 0");
            }
            for (i, o) in operations.iter().enumerate() {
                self.operation_problems(&format!("{list}[{i}]"), o, load, p);
            }
        }
        self.threshold_problems(p);
        if let Some(sample) = &self.trace_sample
            && self.trace_share().is_none()
        {
            p.add(
                "trace_sample",
                format!("{sample:?} is not a share of requests: expected 0% to 100% (or 0 to 1), e.g. 1%"),
            );
        }
    }

    /// `trace_sample` as a fraction (0-1); `None` when absent or not one.
    pub fn trace_share(&self) -> Option<f64> {
        crate::threshold::parse_fraction(self.trace_sample.as_deref()?.trim()).filter(|f| *f <= 1.0)
    }

    /// The single form or the several-scenarios form, not both; each part's load and
    /// name.
    fn parts_problems(&self, p: &mut Problems) {
        let single = !self.load.is_none() || !self.operations.is_empty();
        if self.is_multi() {
            if single {
                p.add(
                    "scenarios",
                    "a file has `load` and `operations` (one scenario) or `scenarios` (several), not both",
                );
            }
            for (name, part) in &self.scenarios {
                if !part::valid_name(name) {
                    p.add(
                        format!("scenarios.{name}"),
                        "a scenario's name is letters, digits, - and _ (it names results: <scenario>/<operation>)",
                    );
                }
                part.load.problems(&format!("scenarios.{name}.load"), p);
            }
            let end = self.duration();
            if end > MAX_RUN {
                p.add(
                    "scenarios",
                    format!(
                        "the scenarios end after the longest run, {} days",
                        MAX_RUN.as_secs() / 86_400
                    ),
                );
            }
        } else if self.load.is_none() {
            p.add(
                "load",
                "needed: `load` and `operations` for one scenario, or `scenarios` for several",
            );
        } else {
            self.load.problems("load", p);
        }
    }

    /// What is wrong with `thresholds`: each must parse, name an operation the scenario
    /// runs, and measure something its load model has.
    fn threshold_problems(&self, p: &mut Problems) {
        let operations = self.reported_operations();
        let layout = self.layout();
        for (i, text) in self.thresholds.iter().enumerate() {
            let field = format!("thresholds[{i}]");
            let t = match text.parse::<Threshold>() {
                Ok(t) => t,
                Err(e) => {
                    p.add(field, e);
                    continue;
                }
            };
            if let Err(e) = t.scope(&operations, &layout) {
                p.add(field.clone(), e);
                continue;
            }
            let measured = self.duration().saturating_sub(self.warmup());
            if let Some(after) = t.abort_after.filter(|after| *after >= measured) {
                p.add(
                    field.clone(),
                    format!(
                        "{text:?}: `after {}` is not within the {} measured: it would never be checked",
                        humantime::format_duration(after),
                        humantime::format_duration(measured)
                    ),
                );
            }
            // The scenario the rule is about: its own measured time and model.
            let span = t
                .scenario
                .as_ref()
                .and_then(|name| layout.spans.iter().find(|s| s.name.as_ref() == Some(name)));
            let own = span.map_or(measured, |s| s.duration.saturating_sub(s.warmup));
            if let Some(window) = t.window.filter(|w| *w > own) {
                p.add(
                    field.clone(),
                    format!(
                        "{text:?}: a window of {} is longer than the {} measured: no window would be full",
                        humantime::format_duration(window),
                        humantime::format_duration(own)
                    ),
                );
            }
            let open = match span {
                Some(s) => s.open,
                None => layout.spans.iter().any(|s| s.open),
            };
            if t.metric == crate::threshold::Metric::AchievedRate && !open {
                p.add(
                    field,
                    format!("{text:?}: achieved_rate is for `model: open`; a closed run has no schedule to achieve"),
                );
            }
        }
    }

    /// What is wrong with the operation at field path `at`, alone or against the
    /// keyspaces, target and the `load` it runs under.
    fn operation_problems(&self, at: &str, o: &Operation, load: &Load, p: &mut Problems) {
        let field = |f: &str| format!("{at}{f}");
        if OpKind::parse(&o.op).is_none() {
            p.add(
                field(".op"),
                format!(
                    "unknown operation {:?}; expected one of {}",
                    o.op,
                    OpKind::names().join(", ")
                ),
            );
        }
        if crate::workload::is_http(&o.op) {
            if !crate::http::ENABLED {
                p.add(
                    field(".op"),
                    format!(
                        "{} needs loadtest built with the `http` feature (cargo install --path loadtest --features http)",
                        o.op
                    ),
                );
            }
            self.http_operation_problems(at, o, p);
        } else if o.path.is_some() || o.body.is_some() || !o.headers.is_empty() {
            p.add(field(""), "path, headers and body are for http.* operations");
        }
        if crate::workload::is_grpc(&o.op) {
            self.grpc_operation_problems(at, o, p);
        } else if o.method.is_some() || o.request.is_some() || !o.metadata.is_empty() || o.messages.is_some() {
            p.add(
                field(""),
                "method, request, metadata and messages are for grpc.* operations",
            );
        }
        if o.op.starts_with("keyvalue.") {
            match &o.keys {
                None => p.add(field(".keys"), format!("{} needs a keyspace name", o.op)),
                Some(k) if !self.keyspaces.contains_key(k) => p.add(
                    field(".keys"),
                    format!(
                        "no keyspace {k:?} (defined: {})",
                        self.keyspaces.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ),
                Some(_) => {}
            }
        }
        if let Some(b) = o.batch
            && !(1..=1000).contains(&b)
        {
            p.add(field(".batch"), format!("{b} is not in 1..=1000"));
        }
        if o.subscribers.is_some() && o.op != "pubsub.publish" {
            p.add(field(".subscribers"), "only pubsub.publish takes subscribers");
        }
        if o.subscribers.is_some_and(|n| n > 1000) {
            p.add(field(".subscribers"), "at most 1000");
        }
        if let Some(ValueSize::Uniform { min, max }) = &o.value_size
            && min > max
        {
            p.add(field(".value_size"), format!("min {min} is above max {max}"));
        }
        if let Some(ValueSize::Fixed(n) | ValueSize::Uniform { max: n, .. }) = &o.value_size {
            if *n > 16 * 1024 * 1024 {
                p.add(field(".value_size"), format!("{n} is over 16 MiB"));
            }
            // Every request in flight may hold a value of the largest size.
            let peak = load.peak_in_flight() as u64;
            let held = peak.saturating_mul(*n as u64);
            if held > MAX_VALUES_IN_FLIGHT {
                p.add(
                    field(".value_size"),
                    format!(
                        "{peak} requests in flight with values up to {n} bytes could hold {} MiB at once, over {} MiB; lower the concurrency (or load.max_in_flight) or the size",
                        held >> 20,
                        MAX_VALUES_IN_FLIGHT >> 20
                    ),
                );
            }
        }
    }

    /// What is wrong with the `grpc.*` operation at `at`, before its descriptors are
    /// known.
    fn grpc_operation_problems(&self, at: &str, o: &Operation, p: &mut Problems) {
        let field = |f: &str| format!("{at}{f}");
        match &o.method {
            None => p.add(
                field(".method"),
                format!("{} needs a method such as package.Service/Method", o.op),
            ),
            Some(m) if prism_proxy::client::MethodPath::parse(&format!("/{m}")).is_err() => {
                p.add(field(".method"), format!("{m:?} is not package.Service/Method"))
            }
            Some(_) => {}
        }
        if o.messages.is_some() && o.op != "grpc.server_stream" {
            p.add(field(".messages"), "only grpc.server_stream reads several messages");
        }
        if o.messages == Some(0) {
            p.add(
                field(".messages"),
                "must be at least 1 (leave it out to read the whole stream)",
            );
        }
        if let Some(k) = &o.keys
            && !self.keyspaces.contains_key(k)
        {
            p.add(field(".keys"), format!("no keyspace {k:?}"));
        }
        for key in o.metadata.keys() {
            if !valid_metadata_key(key) {
                p.add(
                    field(&format!(".metadata.{key}")),
                    "metadata keys are lowercase ASCII letters, digits, - _ .",
                );
            }
        }
    }

    /// What is wrong with the `http.*` operation at `at`.
    fn http_operation_problems(&self, at: &str, o: &Operation, p: &mut Problems) {
        let field = |f: &str| format!("{at}{f}");
        match &o.path {
            None => p.add(field(".path"), format!("{} needs a path such as /healthz", o.op)),
            Some(path) if !path.starts_with('/') => p.add(field(".path"), format!("{path:?} must start with /")),
            Some(_) => {}
        }
        if o.body.is_some() && o.op != "http.post" {
            p.add(field(".body"), "only http.post takes a body");
        }
        for key in o.headers.keys() {
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                p.add(field(&format!(".headers.{key}")), "not a valid header name");
            }
        }
        if let Some(k) = &o.keys
            && !self.keyspaces.contains_key(k)
        {
            p.add(field(".keys"), format!("no keyspace {k:?}"));
        }
        if let Some(Target::Remote(r)) = &self.target
            && !r
                .http_endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("http://") || e.starts_with("https://"))
        {
            p.add(
                "target.http_endpoint",
                format!("{} needs an http:// or https:// endpoint ({at})", o.op),
            );
        }
    }

    /// Operation names as reported: one per operation, plus `pubsub.delivery` when
    /// any publish has subscribers; with several scenarios, each scenario's as
    /// `<scenario>/<operation>`, in the order of [`Scenario::layout`].
    pub fn reported_operations(&self) -> Vec<String> {
        self.part_refs()
            .into_iter()
            .flat_map(|p| {
                let prefix = p.name.map(|n| format!("{n}/")).unwrap_or_default();
                reported_names(p.operations)
                    .into_iter()
                    .map(move |o| format!("{prefix}{o}"))
            })
            .collect()
    }

    /// For the server-streaming operation `operations[i]`: where its time-to-first-message
    /// and per-message latencies are reported (indices into [`Scenario::reported_operations`]).
    pub fn stream_metrics(&self, i: usize) -> Option<(usize, usize)> {
        if self.operations.get(i)?.op != "grpc.server_stream" {
            return None;
        }
        let delivery = usize::from(self.operations.iter().any(|o| o.subscribers.unwrap_or(0) > 0));
        let rank = self.operations[..i]
            .iter()
            .filter(|o| o.op == "grpc.server_stream")
            .count();
        let first = self.operations.len() + delivery + 2 * rank;
        Some((first, first + 1))
    }

    /// Time before measurement starts: the warm-up, or with several scenarios the
    /// earliest start plus warm-up of any of them.
    pub fn warmup(&self) -> Duration {
        if self.is_multi() {
            return self.layout().measure_from();
        }
        self.load.warmup()
    }

    /// Total duration, warm-up included (validated to be at most [`MAX_RUN`]); with
    /// several scenarios, until the last one ends.
    pub fn duration(&self) -> Duration {
        if self.is_multi() {
            return self.layout().end();
        }
        self.load.duration()
    }
}

/// The reported operations of one part's `operations`, in the order its engine's indices
/// follow.
fn reported_names(operations: &[Operation]) -> Vec<String> {
    // An HTTP operation is named with its path (`http.get:/healthz`): a scenario often
    // has several.
    let mut names: Vec<String> = operations.iter().map(Operation::reported_name).collect();
    if operations.iter().any(|o| o.subscribers.unwrap_or(0) > 0) {
        names.push(DELIVERY_OP.to_string());
    }
    for o in operations.iter().filter(|o| o.op == "grpc.server_stream") {
        let name = o.reported_name();
        names.push(format!("{name}{FIRST_MESSAGE}"));
        names.push(format!("{name}{MESSAGE}"));
    }
    names
}

/// Resolves the `grpc.*` operation at field path `at` in `pool` and compiles its request.
fn bind_operation(pool: &prost_reflect::DescriptorPool, at: &str, o: &mut Operation, p: &mut Problems) {
    if !crate::workload::is_grpc(&o.op) {
        return;
    }
    let field = |f: &str| format!("{at}{f}");
    let Some(name) = &o.method else { return };
    let method = match crate::grpc::resolve(pool, name) {
        Ok(m) => m,
        Err(e) => {
            p.add(field(".method"), e);
            return;
        }
    };
    let streaming = o.op == "grpc.server_stream";
    if method.client_streaming {
        p.add(
            field(".method"),
            format!("{name} is client-streaming: loadtest calls unary and server-streaming methods"),
        );
        return;
    }
    if method.server_streaming != streaming {
        let (is, use_op) = if method.server_streaming {
            ("server-streaming", "grpc.server_stream")
        } else {
            ("unary", "grpc.unary")
        };
        p.add(field(".op"), format!("{name} is {is}: use op: {use_op}"));
        return;
    }
    let request = o
        .request
        .clone()
        .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
    let template = match crate::grpc::Template::compile(&method.input, &request) {
        Ok(t) => t,
        Err(problems) => {
            for (at, message) in problems {
                p.add(field(&format!(".request{at}")), message);
            }
            return;
        }
    };
    let mut metadata = tonic::metadata::MetadataMap::new();
    for (key, value) in &o.metadata {
        match (
            key.parse::<tonic::metadata::AsciiMetadataKey>(),
            value.parse::<tonic::metadata::AsciiMetadataValue>(),
        ) {
            (Ok(k), Ok(v)) => {
                metadata.insert(k, v);
            }
            _ => p.add(field(&format!(".metadata.{key}")), "not valid ASCII gRPC metadata"),
        }
    }
    o.call = Some(std::sync::Arc::new(crate::grpc::Call {
        method,
        template,
        metadata,
        messages: o.messages,
    }));
}

/// The node at a dotted path with `[i]` indices, creating mapping keys on the way.
fn locate<'a>(mut node: &'a mut serde_yaml::Value, path: &str) -> Result<&'a mut serde_yaml::Value, String> {
    use serde_yaml::Value;
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    for part in path.split('.') {
        let (name, indices) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            if node.is_null() {
                *node = Value::Mapping(Default::default());
            }
            let Value::Mapping(map) = node else {
                return Err(format!("{name:?} is not inside a mapping"));
            };
            node = map.entry(Value::String(name.to_string())).or_insert(Value::Null);
        }
        for index in indices.split('[').filter(|s| !s.is_empty()) {
            let i: usize = index
                .strip_suffix(']')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("{part:?}: an index is written [N]"))?;
            let Value::Sequence(items) = node else {
                return Err(format!("{part:?}: not a list"));
            };
            let len = items.len();
            node = items
                .get_mut(i)
                .ok_or_else(|| format!("{part:?}: index {i} is past the end (length {len})"))?;
        }
    }
    Ok(node)
}

/// The longest run a scenario may ask for, all stages together: long enough for a soak
/// test, short enough that every sum of times stays far from overflowing.
pub const MAX_RUN: Duration = Duration::from_secs(366 * 24 * 3600);

/// Most requests an open model may have in flight at once.
pub const MAX_IN_FLIGHT: usize = 1_000_000;

/// Most bytes of values the requests in flight at once may hold between them.
pub const MAX_VALUES_IN_FLIGHT: u64 = 2 << 30;

impl Load {
    /// Each stage: its duration and what it offers, in words (`100 -> 500 req/s`, `8
    /// clients`).
    pub fn stages(&self) -> Vec<(Duration, String)> {
        match self {
            Load::Open { stages, .. } => stages
                .iter()
                .map(|s| {
                    let offered = match s.ramp_to {
                        Some(to) if to != s.rate => format!("{} -> {to} req/s", s.rate),
                        _ => format!("{} req/s", s.rate),
                    };
                    (s.duration, offered)
                })
                .collect(),
            Load::Closed { stages, .. } => stages
                .iter()
                .map(|s| (s.duration, format!("{} clients", s.concurrency)))
                .collect(),
        }
    }

    fn durations(&self) -> Vec<Duration> {
        match self {
            Load::Open { stages, .. } => stages.iter().map(|s| s.duration).collect(),
            Load::Closed { stages, .. } => stages.iter().map(|s| s.duration).collect(),
        }
    }

    /// The highest arrival rate of an open load; `None` for a closed one.
    pub fn peak_rate(&self) -> Option<f64> {
        match self {
            Load::Open { stages, .. } => Some(
                stages
                    .iter()
                    .flat_map(|s| [s.rate, s.ramp_to.unwrap_or(s.rate)])
                    .fold(0.0, f64::max),
            ),
            Load::Closed { .. } => None,
        }
    }

    /// Most requests in flight at once: the open model's cap, the closed model's largest
    /// stage.
    pub fn peak_in_flight(&self) -> usize {
        match self {
            Load::Open { max_in_flight, .. } => *max_in_flight,
            Load::Closed { stages, .. } => stages.iter().map(|s| s.concurrency).max().unwrap_or(0),
        }
    }

    /// No load given (a file of several scenarios has none at the top).
    fn none() -> Load {
        Load::Closed {
            stages: Vec::new(),
            think_time: Duration::ZERO,
            warmup: Duration::ZERO,
        }
    }

    pub fn is_none(&self) -> bool {
        self.durations().is_empty() && self.warmup().is_zero()
    }

    pub fn warmup(&self) -> Duration {
        match self {
            Load::Open { warmup, .. } | Load::Closed { warmup, .. } => *warmup,
        }
    }

    /// Its stages' durations added up.
    pub fn duration(&self) -> Duration {
        self.durations()
            .into_iter()
            .fold(Duration::ZERO, Duration::saturating_add)
    }

    /// What is wrong with the load at field path `at` (`load`, `scenarios.probe.load`):
    /// stages, rates, concurrency, the in-flight cap.
    fn problems(&self, at: &str, p: &mut Problems) {
        let durations = self.durations();
        if durations.is_empty() {
            p.add(format!("{at}.stages"), "at least one stage is needed");
        }
        for (i, d) in durations.iter().enumerate() {
            if d.is_zero() {
                p.add(format!("{at}.stages[{i}].duration"), "must be more than 0 (e.g. 10s)");
            }
        }
        let total = durations.iter().try_fold(Duration::ZERO, |sum, d| sum.checked_add(*d));
        let warmup = match self {
            Load::Open { warmup, .. } | Load::Closed { warmup, .. } => *warmup,
        };
        if let Some(total) = total.filter(|t| !t.is_zero() && warmup >= *t) {
            p.add(
                format!("{at}.warmup"),
                format!(
                    "{warmup:?} of warm-up is as long as the whole run ({total:?}): nothing would be measured; make it shorter than the stages"
                ),
            );
        }
        if total.is_none_or(|t| t > MAX_RUN) {
            p.add(
                format!("{at}.stages"),
                format!(
                    "the stages last longer than the longest run, {} days",
                    MAX_RUN.as_secs() / 86_400
                ),
            );
        }
        match self {
            Load::Open {
                stages, max_in_flight, ..
            } => {
                for (i, s) in stages.iter().enumerate() {
                    for (field, rate) in [("rate", Some(s.rate)), ("ramp_to", s.ramp_to)] {
                        if let Some(r) = rate.filter(|r| !r.is_finite() || *r < 0.0 || *r > 10_000_000.0) {
                            p.add(
                                format!("{at}.stages[{i}].{field}"),
                                format!("{r} is not a rate in 0..=10000000 requests/s"),
                            );
                        }
                    }
                }
                if *max_in_flight == 0 || *max_in_flight > MAX_IN_FLIGHT {
                    p.add(
                        format!("{at}.max_in_flight"),
                        format!("{max_in_flight} is not in 1..={MAX_IN_FLIGHT}"),
                    );
                }
            }
            Load::Closed { stages, .. } => {
                for (i, s) in stages.iter().enumerate() {
                    if s.concurrency == 0 || s.concurrency > 100_000 {
                        p.add(
                            format!("{at}.stages[{i}].concurrency"),
                            format!("{} is not in 1..=100000", s.concurrency),
                        );
                    }
                }
            }
        }
    }
}

impl RemoteTarget {
    /// What is wrong with `target`: the endpoint, TLS settings, channels, metadata.
    fn problems(&self, p: &mut Problems) {
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            p.add(
                "target.endpoint",
                format!("{:?} must start with http:// or https://", self.endpoint),
            );
        }
        if !self.endpoint.starts_with("https://") {
            if self.ca_file.is_some() {
                p.add("target.ca_file", "only used with an https:// endpoint");
            }
            if self.server_name.is_some() {
                p.add("target.server_name", "only used with an https:// endpoint");
            }
        }
        if self.channels == 0 || self.channels > 1024 {
            p.add("target.channels", format!("{} is not in 1..=1024", self.channels));
        }
        for key in self.metadata.keys() {
            if !valid_metadata_key(key) {
                p.add(
                    format!("target.metadata.{key}"),
                    "metadata keys are lowercase ASCII letters, digits, - _ .",
                );
            }
        }
    }
}

/// An ASCII gRPC metadata key (binary `-bin` keys are not supported).
fn valid_metadata_key(key: &str) -> bool {
    !key.is_empty()
        && !key.ends_with("-bin")
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "name: t\nload: {model: open, stages: [{duration: 1s, rate: 10}]}\n\
        keyspaces: {k: {count: 5}}\noperations: [{op: keyvalue.get, keys: k}]\n";

    fn base() -> Scenario {
        Scenario::parse(BASE, Path::new("t.yaml")).unwrap()
    }

    #[test]
    fn overrides_change_nested_values_and_add_keys() {
        let sets = [
            "load.stages[0].rate=2000".to_string(),
            "target.endpoint=http://h:1".into(),
            "seed=9".into(),
        ];
        let s = base().with_overrides(&sets, Path::new("t.yaml")).unwrap();
        let Load::Open { stages, .. } = &s.load else {
            panic!("open")
        };
        assert_eq!(stages[0].rate, 2000.0);
        assert_eq!(s.seed, 9);
        assert!(matches!(&s.target, Some(Target::Remote(r)) if r.endpoint == "http://h:1"));
    }

    #[test]
    fn bad_overrides_name_themselves() {
        for (set, needle) in [
            ("load.stages[3].rate=1", "past the end"),
            ("load.stages[0].rate=fast", "--set"),
            ("nonsense", "path=value"),
            ("load.stages[0].rate=-1", "rate"),
        ] {
            let e = base()
                .with_overrides(&[set.to_string()], Path::new("t.yaml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{set}: {e}");
        }
    }
}
