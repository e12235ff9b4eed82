//! Policy rules from the config, matched on a decision's kind by glob (first
//! match wins, the default policy otherwise), and kind-glob sets in general.

use super::model::{EscalationLevel, OnTimeout, Policy, Unless};
use super::{cut, Refusal, Result};
use globset::{Glob, GlobMatcher, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// A set of kind globs (`scram.*`). Empty matches everything only where the
/// caller says so; `matches` on an empty set is false.
/// The globs compile into one set, so a kind is matched in one pass however
/// many there are (a list of them costs decisions, not decisions × globs).
/// Clones share the compiled set: a cloned regex starts an empty match
/// cache of its own, which every dev-mode request paid for.
#[derive(Debug, Clone, Default)]
pub struct KindGlobs {
    set: std::sync::Arc<GlobSet>,
}

impl KindGlobs {
    /// Compiles `patterns`; `field` names the config key or request field in
    /// the error.
    pub fn new(field: &str, patterns: &[String]) -> Result<Self> {
        let mut set = GlobSetBuilder::new();
        for p in patterns {
            let glob = Glob::new(p).map_err(|e| {
                // The error's kind, not its Display: that quotes the whole
                // pattern, which may be huge.
                Refusal::invalid(format!("{field}: bad glob {:?}: {}", cut(p), e.kind()))
            })?;
            set.add(glob);
        }
        let set = set
            .build()
            .map_err(|e| Refusal::invalid(format!("{field}: {}", e.kind())))?;
        Ok(KindGlobs {
            set: std::sync::Arc::new(set),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    pub fn matches(&self, kind: &str) -> bool {
        self.set.is_match(kind)
    }

    /// Empty means "no filter": everything passes.
    pub fn allows(&self, kind: &str) -> bool {
        self.is_empty() || self.matches(kind)
    }
}

/// One `[[policies]]` entry as written in the config.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// Kind glob (`deploy.*`); the first entry whose glob matches a
    /// decision's kind applies, else the defaults.
    pub kind: String,
    /// Distinct approvals needed (default 1; an Ask may ask for more, never
    /// fewer).
    #[serde(default)]
    pub required_approvals: Option<u32>,
    /// Time to live (default none: no expiry); an Ask's `timeout` may
    /// shorten it. Not zero, at most `[limits] max_timeout`.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub on_timeout: OnTimeout,
    /// The answer recorded when `on_timeout` is `approve` or `reject`.
    #[serde(default)]
    pub timeout_answer: Option<Value>,
    /// Time for a surface to `AckDelivery` before the `fallback` fires
    /// (default 60s).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub ack_window: Option<Duration>,
    /// Webhook names paged once when the ACK window passes unacknowledged.
    #[serde(default)]
    pub fallback: Vec<String>,
    /// How old a context confirmation may be when an approval completes a
    /// quorum of 2 or more (default 60s).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub context_max_age: Option<Duration>,
    /// Whether the asker may answer its own decision.
    #[serde(default)]
    pub allow_self_approval: bool,
    /// Levels paged one after another while the decision stays open.
    #[serde(default)]
    pub escalation: Vec<EscalationRule>,
    /// Webhooks told the outcome when a decision closes.
    #[serde(default)]
    pub notify_outcome: Vec<String>,
    /// Slack channel id (`C0DEPLOY`) the decision is posted to with
    /// Approve / Reject buttons, and updated in place as it changes; needs
    /// `[slack]`.
    #[serde(default)]
    pub slack_channel: Option<String>,
}

/// One `escalation = [{ after, webhooks, unless }]` level as written.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EscalationRule {
    /// Time since the decision was created when this level fires.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub after: Duration,
    /// Webhook names paged at this level.
    pub webhooks: Vec<String>,
    /// `acked`, `answered`, or absent (fires whenever still open). A string,
    /// so a typo is refused with the policy and level named.
    #[serde(default)]
    pub unless: Option<String>,
}

impl PolicyRule {
    /// The effective ack window (the fallback's due time).
    fn ack_window_or_default(&self) -> Duration {
        self.ack_window.unwrap_or(Duration::from_micros(
            Policy::default().ack_window_us as u64,
        ))
    }

    /// Compiles the escalation chain; `at` names the policy in errors.
    fn escalation_levels(&self, at: &str) -> Result<Vec<EscalationLevel>> {
        // The fallback shorthand is the level before the chain: a chain
        // level due before it would page out of order.
        let mut previous = (!self.fallback.is_empty()).then(|| {
            (
                self.ack_window_or_default(),
                "ack_window (the fallback)".to_string(),
            )
        });
        let mut levels = Vec::with_capacity(self.escalation.len());
        for (j, level) in self.escalation.iter().enumerate() {
            let name = format!("{at}.escalation[{j}] (level {})", j + 1);
            let unless = match level.unless.as_deref() {
                None => Unless::None,
                Some("acked") => Unless::Acked,
                Some("answered") => Unless::Answered,
                Some(other) => {
                    return Err(Refusal::invalid(format!(
                        "{name}.unless: {other:?} is not one of \"acked\", \"answered\""
                    )))
                }
            };
            if level.after.is_zero() {
                return Err(Refusal::invalid(format!(
                    "{name}.after: must be more than 0s"
                )));
            }
            if let Some((before, what)) = &previous {
                if level.after <= *before {
                    return Err(Refusal::invalid(format!(
                        "{name}.after: {} must be later than {what}: {}",
                        humantime::format_duration(level.after),
                        humantime::format_duration(*before)
                    )));
                }
            }
            if level.webhooks.is_empty() {
                return Err(Refusal::invalid(format!(
                    "{name}.webhooks: must name at least one [[webhooks]] entry"
                )));
            }
            previous = Some((level.after, format!("escalation[{j}].after")));
            levels.push(EscalationLevel {
                after_us: micros(level.after),
                webhooks: level.webhooks.clone(),
                unless,
            });
        }
        Ok(levels)
    }
}

/// The compiled policy table.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    rules: Vec<(GlobMatcher, PolicyRule, Vec<EscalationLevel>)>,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Policies {
    pub fn new(rules: &[PolicyRule]) -> Result<Self> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                if rule.required_approvals == Some(0) {
                    return Err(Refusal::invalid(format!(
                        "policies[{i}].required_approvals: must be at least 1"
                    )));
                }
                if rule.timeout == Some(Duration::ZERO) {
                    return Err(Refusal::invalid(format!(
                        "policies[{i}].timeout: must be positive (leave it out for no timeout)"
                    )));
                }
                if rule.on_timeout != OnTimeout::Expire && rule.timeout_answer.is_none() {
                    return Err(Refusal::invalid(format!(
                        "policies[{i}].timeout_answer: required when on_timeout = {:?}",
                        rule.on_timeout.as_str()
                    )));
                }
                let glob = Glob::new(&rule.kind).map_err(|e| {
                    Refusal::invalid(format!("policies[{i}].kind: bad glob {:?}: {e}", rule.kind))
                })?;
                let levels =
                    rule.escalation_levels(&format!("policies[{i}] (kind {:?})", rule.kind))?;
                Ok((glob.compile_matcher(), rule.clone(), levels))
            })
            .collect::<Result<_>>()?;
        Ok(Policies { rules })
    }

    /// The effective policy for `kind`.
    pub fn effective(&self, kind: &str) -> Policy {
        let defaults = Policy::default();
        let Some((_, rule, levels)) = self.rules.iter().find(|(g, _, _)| g.is_match(kind)) else {
            return defaults;
        };
        Policy {
            matched_kind: rule.kind.clone(),
            required_approvals: rule
                .required_approvals
                .unwrap_or(defaults.required_approvals),
            timeout_us: rule.timeout.map(micros),
            on_timeout: rule.on_timeout,
            timeout_answer: rule.timeout_answer.clone().unwrap_or(Value::Null),
            ack_window_us: rule
                .ack_window
                .map(micros)
                .unwrap_or(defaults.ack_window_us),
            fallback: rule.fallback.clone(),
            context_max_age_us: rule
                .context_max_age
                .map(micros)
                .unwrap_or(defaults.context_max_age_us),
            allow_self_approval: rule.allow_self_approval,
            webhook_surfaces: Vec::new(),
            escalation: levels.clone(),
            notify_outcome: rule.notify_outcome.clone(),
            slack_channel: rule.slack_channel.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: &str, approvals: u32) -> PolicyRule {
        PolicyRule {
            kind: kind.into(),
            required_approvals: Some(approvals),
            timeout: Some(Duration::from_secs(900)),
            on_timeout: OnTimeout::Expire,
            timeout_answer: None,
            ack_window: None,
            fallback: vec!["pager".into()],
            context_max_age: Some(Duration::from_secs(30)),
            allow_self_approval: false,
            escalation: Vec::new(),
            notify_outcome: Vec::new(),
            slack_channel: None,
        }
    }

    fn level(after: u64, hook: &str, unless: Option<&str>) -> EscalationRule {
        EscalationRule {
            after: Duration::from_secs(after),
            webhooks: vec![hook.into()],
            unless: unless.map(Into::into),
        }
    }

    #[test]
    fn escalation_chain_is_copied_into_the_policy() {
        let mut r = rule("deploy.*", 1);
        r.escalation = vec![
            level(120, "l1", Some("acked")),
            level(600, "l2", Some("answered")),
            level(900, "l3", None),
        ];
        r.notify_outcome = vec!["slack".into()];
        let p = Policies::new(&[r]).unwrap().effective("deploy.prod");
        assert_eq!(p.escalation.len(), 3);
        assert_eq!(p.escalation[0].after_us, 120_000_000);
        assert_eq!(p.escalation[0].unless, Unless::Acked);
        assert_eq!(p.escalation[1].unless, Unless::Answered);
        assert_eq!(p.escalation[2].unless, Unless::None);
        assert_eq!(p.escalation[1].webhooks, vec!["l2".to_string()]);
        assert_eq!(p.notify_outcome, vec!["slack".to_string()]);
    }

    #[test]
    fn refuses_bad_chains_naming_policy_and_level() {
        let refused = |levels: Vec<EscalationRule>| {
            let mut r = rule("deploy.*", 1);
            r.escalation = levels;
            Policies::new(&[rule("x", 1), r]).unwrap_err().message
        };
        let m = refused(vec![level(120, "a", Some("acked")), level(60, "b", None)]);
        assert!(m.contains("policies[1]") && m.contains("deploy.*"), "{m}");
        assert!(m.contains("escalation[1] (level 2).after"), "{m}");
        let m = refused(vec![level(120, "a", Some("acked")), level(120, "b", None)]);
        assert!(m.contains("(level 2).after"), "{m}");
        let m = refused(vec![level(120, "a", Some("ackd"))]);
        assert!(
            m.contains("escalation[0] (level 1).unless") && m.contains("ackd"),
            "{m}"
        );
        // The fallback shorthand (60s ack window here) comes first.
        let m = refused(vec![level(30, "a", None)]);
        assert!(
            m.contains("(level 1).after") && m.contains("ack_window"),
            "{m}"
        );
        let m = refused(vec![EscalationRule {
            webhooks: vec![],
            ..level(120, "a", None)
        }]);
        assert!(m.contains("(level 1).webhooks"), "{m}");
    }

    #[test]
    fn first_matching_glob_wins_and_default_applies_otherwise() {
        let p = Policies::new(&[rule("scram.*", 2), rule("*", 3)]).unwrap();
        let scram = p.effective("scram.confirm-global-readonly");
        assert_eq!(scram.required_approvals, 2);
        assert_eq!(scram.matched_kind, "scram.*");
        assert_eq!(scram.timeout_us, Some(900_000_000));
        assert_eq!(scram.context_max_age_us, 30_000_000);
        assert_eq!(scram.ack_window_us, 60_000_000);
        assert_eq!(p.effective("deploy.prod").required_approvals, 3);
        let none = Policies::new(&[rule("scram.*", 2)]).unwrap();
        assert_eq!(none.effective("deploy.prod"), Policy::default());
    }

    #[test]
    fn refuses_bad_rules() {
        let err = Policies::new(&[rule("a[", 1)]).unwrap_err();
        assert!(err.message.contains("policies[0].kind"), "{err}");
        let err = Policies::new(&[rule("a.*", 0)]).unwrap_err();
        assert!(
            err.message.contains("policies[0].required_approvals"),
            "{err}"
        );
        let zero = PolicyRule {
            timeout: Some(Duration::ZERO),
            ..rule("a.*", 1)
        };
        let err = Policies::new(&[zero]).unwrap_err();
        assert!(err.message.starts_with("policies[0].timeout:"), "{err}");
        let no_answer = PolicyRule {
            on_timeout: OnTimeout::Approve,
            ..rule("a.*", 1)
        };
        let err = Policies::new(&[rule("b", 1), no_answer.clone()]).unwrap_err();
        assert!(
            err.message
                .starts_with("policies[1].timeout_answer: required"),
            "{err}"
        );
        let answered = PolicyRule {
            timeout_answer: Some(Value::Null),
            ..no_answer
        };
        assert!(Policies::new(&[answered]).is_ok());
    }

    #[test]
    fn kind_globs_filter() {
        let g = KindGlobs::new("kinds", &["deploy.*".into()]).unwrap();
        assert!(g.matches("deploy.prod"));
        assert!(!g.matches("scram.x"));
        assert!(KindGlobs::default().allows("anything"));
        assert!(KindGlobs::new("kinds", &["[".into()]).is_err());
    }
}
