//! How a scenario's `load:` is read. The file form is one flat mapping whatever the model,
//! so a wrong value is reported by serde with its line, column and field path
//! (`load.stages[0].rate`) and in words (`a number of requests per second`), not at 1:1
//! as an internally tagged enum reports it; what does not belong to the model is then
//! reported all at once, each with its path.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::{ClosedStage, Load, OpenStage, default_max_in_flight};

impl<'de> Deserialize<'de> for Load {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Load, D::Error> {
        LoadFile::deserialize(d)?
            .into_load()
            // One `field: message` line each, placed at its field by Problems::from_yaml_error.
            .map_err(|problems| serde::de::Error::custom(problems.join("\n")))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadFile {
    model: Model,
    stages: Vec<StageFile>,
    #[serde(default)]
    max_in_flight: Option<Whole>,
    #[serde(default, with = "humantime_serde")]
    warmup: Duration,
    #[serde(default, with = "humantime_serde")]
    think_time: Option<Duration>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Model {
    Open,
    Closed,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StageFile {
    #[serde(with = "humantime_serde")]
    duration: Duration,
    #[serde(default)]
    rate: Option<Rate>,
    #[serde(default)]
    ramp_to: Option<Rate>,
    #[serde(default)]
    concurrency: Option<Whole>,
}

impl LoadFile {
    fn into_load(self) -> Result<Load, Vec<String>> {
        let mut problems = Vec::new();
        let other = |field: &str, model: &str| format!("load.{field}: is for `model: {model}`");
        let load = match self.model {
            Model::Open => {
                if self.think_time.is_some() {
                    problems.push(other("think_time", "closed"));
                }
                let stages = self
                    .stages
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, s)| {
                        if s.concurrency.is_some() {
                            problems.push(format!(
                                "load.stages[{i}].concurrency: is for `model: closed`; an open stage has `rate`"
                            ));
                        }
                        let Some(rate) = s.rate else {
                            problems.push(format!(
                                "load.stages[{i}].rate: an open stage needs a rate (requests per second)"
                            ));
                            return None;
                        };
                        Some(OpenStage {
                            duration: s.duration,
                            rate: rate.0,
                            ramp_to: s.ramp_to.map(|r| r.0),
                        })
                    })
                    .collect();
                Load::Open {
                    stages,
                    max_in_flight: self.max_in_flight.map_or_else(default_max_in_flight, |w| w.0),
                    warmup: self.warmup,
                }
            }
            Model::Closed => {
                if self.max_in_flight.is_some() {
                    problems.push(other("max_in_flight", "open"));
                }
                let stages = self
                    .stages
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, s)| {
                        for (field, given) in [("rate", s.rate.is_some()), ("ramp_to", s.ramp_to.is_some())] {
                            if given {
                                problems.push(format!(
                                    "load.stages[{i}].{field}: is for `model: open`; a closed stage has `concurrency`"
                                ));
                            }
                        }
                        let Some(concurrency) = s.concurrency else {
                            problems.push(format!(
                                "load.stages[{i}].concurrency: a closed stage needs a concurrency (clients)"
                            ));
                            return None;
                        };
                        Some(ClosedStage {
                            duration: s.duration,
                            concurrency: concurrency.0,
                        })
                    })
                    .collect();
                Load::Closed {
                    stages,
                    think_time: self.think_time.unwrap_or_default(),
                    warmup: self.warmup,
                }
            }
        };
        if problems.is_empty() { Ok(load) } else { Err(problems) }
    }
}

/// A rate in requests per second, named so in errors.
struct Rate(f64);

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Rate;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number of requests per second, e.g. 500")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Rate, E> {
                Ok(Rate(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Rate, E> {
                Ok(Rate(v as f64))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Rate, E> {
                Ok(Rate(v as f64))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A count (clients, requests in flight), named so in errors.
struct Whole(usize);

impl<'de> Deserialize<'de> for Whole {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Whole, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Whole;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a whole number, e.g. 8")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Whole, E> {
                usize::try_from(v)
                    .map(Whole)
                    .map_err(|_| E::custom(format!("{v} is too large")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Whole, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("{v} is below 0")))
                    .and_then(|v| self.visit_u64(v))
            }
        }
        d.deserialize_any(Visitor)
    }
}
