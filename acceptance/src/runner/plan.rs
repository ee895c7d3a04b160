//! What becomes of one trial before it runs: the skip and strict-mode rules in one place.

/// What the runner does with a trial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Run it.
    Run,
    /// Report it as skipped (ignored) with this reason.
    Skip(String),
    /// Fail it at once with this message (strict mode: it could not be run).
    Fail(String),
}

/// Why a trial might not run, in the order the rules look at them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Obstacles {
    /// Capabilities the case needs and the target lacks: a skip in every mode, since
    /// the backend never claimed them.
    pub(crate) lacking: Vec<String>,
    /// A provider ruled out on purpose: a counted skip, even in strict mode.
    pub(crate) ruled_out: Option<String>,
    /// What it needs is not there (not provisioned, no proxy, no binary): a skip, or a
    /// failure in strict mode.
    pub(crate) unavailable: Option<String>,
}

/// The rules: missing capabilities and providers ruled out skip; anything else missing
/// skips, or fails in strict mode; otherwise the trial runs.
pub(crate) fn plan(obstacles: Obstacles, strict: bool) -> Plan {
    if !obstacles.lacking.is_empty() {
        return Plan::Skip(format!("needs capability {}", obstacles.lacking.join(", ")));
    }
    if let Some(why) = obstacles.ruled_out {
        return Plan::Skip(why);
    }
    match obstacles.unavailable {
        Some(why) if strict => Plan::Fail(format!("strict mode: {why}")),
        Some(why) => Plan::Skip(why),
        None => Plan::Run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable() -> Obstacles {
        Obstacles {
            unavailable: Some("redis not provisioned: no binary".into()),
            ..Obstacles::default()
        }
    }

    #[test]
    fn nothing_missing_runs() {
        assert_eq!(plan(Obstacles::default(), false), Plan::Run);
        assert_eq!(plan(Obstacles::default(), true), Plan::Run);
    }

    #[test]
    fn an_unavailable_target_skips_but_fails_in_strict_mode() {
        assert_eq!(
            plan(unavailable(), false),
            Plan::Skip("redis not provisioned: no binary".into())
        );
        assert_eq!(
            plan(unavailable(), true),
            Plan::Fail("strict mode: redis not provisioned: no binary".into())
        );
    }

    #[test]
    fn a_missing_capability_skips_even_in_strict_mode_and_before_anything_else() {
        let obstacles = Obstacles {
            lacking: vec!["ttl_remaining".into(), "enforces_limits".into()],
            ..unavailable()
        };
        assert_eq!(
            plan(obstacles, true),
            Plan::Skip("needs capability ttl_remaining, enforces_limits".into())
        );
    }

    #[test]
    fn a_provider_ruled_out_on_purpose_skips_even_in_strict_mode() {
        let obstacles = Obstacles {
            ruled_out: Some("the official image needs a registry".into()),
            ..unavailable()
        };
        assert_eq!(
            plan(obstacles, true),
            Plan::Skip("the official image needs a registry".into())
        );
    }
}
