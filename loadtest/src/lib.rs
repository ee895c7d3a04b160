//! `loadtest`: replays a YAML scenario against a Prism endpoint (or the proxy with
//! memstore started in-process) and reports latency corrected for coordinated omission.
//!
//! - [`scenario`]: the file format and its validation;
//! - [`workload`]: deterministic operation, key and size choices;
//! - [`engine`]: open and closed load models;
//! - [`http`]: `http.*` operations on goose, beside the engine;
//! - [`grpc`]: `grpc.*` operations on any method, from `.proto` files or reflection;
//! - [`stats`]: histograms and the per-second series;
//! - [`threshold`] and [`report`]: verdicts, terminal table, `run.json`, HdrHistogram log;
//! - [`export`]: CSV and JUnit XML for other tools;
//! - [`live`]: the run's metrics over OTLP while it goes;
//! - [`run`]: `loadtest run` from scenario file to verdict.

pub mod compare;
pub mod engine;
pub mod export;
pub mod grpc;
pub mod html;
pub mod http;
pub mod live;
pub mod merge;
pub mod report;
pub mod run;
pub mod scenario;
pub mod shard;
pub mod stats;
pub mod threshold;
pub mod workload;
