//! Routes: which vendors a profile's documents may go to, in order (`VENDOR_ROUTES`).
//!
//! ```text
//! VENDOR_ROUTES=receipt=sim,azure:prebuilt-receipt; invoice=azure:prebuilt-invoice,mindee:<id>
//! ```
//!
//! A profile's first vendor takes its documents while its breaker lets calls through; while it
//! is open, a new submission takes the next vendor whose breaker does (submit's
//! `choose_vendor`). A profile the setting does not name goes to `VENDOR` alone, so a stack
//! without routes is the one-vendor stack it always was.
//!
//! Each vendor a route names other than `VENDOR` is an adapter of its own, configured by the
//! same settings under its name: `AZURE_VENDOR_BASE_URL`, `AZURE_VENDOR_API_KEY_SECRET_ARN`,
//! `AZURE_VENDOR_MODELS`, `AZURE_VENDOR_TIMEOUT_MS`, `AZURE_VENDOR_RATE_LIMIT_RPS`… (settings
//! that already carry the vendor's name, `TEXTRACT_SNS_TOPIC_ARN` or `MINDEE_WEBHOOK_IDS`, keep
//! it). A `vendor:model` in a route names that vendor's model for the profile, over its
//! `*_MODELS`.
//!
//! Exactly-once across vendors rests on the job, not on the route: every attempt records the
//! vendor it went to ([`crate::job::Attempt::new_id`], `Job::vendor`), an unresolved attempt is
//! resolved at that vendor before anything goes elsewhere, and parse and reconcile ask the job's
//! vendor about its job ([`Routes::of`]).

use std::collections::BTreeMap;

use super::select::{AnyVendor, VendorConfigError, VendorKind, VendorSettings};
use super::Vendor;
use crate::aws::AwsClients;
use crate::job::{Job, Profile};
use crate::retry::Budgets;

const SETTING: &str = "VENDOR_ROUTES";

/// `VENDOR_ROUTES`, parsed: each named profile's vendors in order, and the models a route names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    by_profile: BTreeMap<String, Vec<VendorKind>>,
    /// `(vendor, profile) → model`, from `vendor:model` entries.
    models: BTreeMap<(VendorKind, String), String>,
}

impl RouteTable {
    pub fn parse(spec: Option<&str>) -> Result<Self, VendorConfigError> {
        let bad = |problem: String| VendorConfigError {
            setting: SETTING,
            problem,
        };
        let mut table = RouteTable::default();
        for part in spec
            .unwrap_or_default()
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (profile, vendors) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("{part:?} is not PROFILE=VENDOR[:MODEL],…")))?;
            let profile = Profile::new(profile.trim()).map_err(|e| bad(e.to_string()))?;
            let mut route = Vec::new();
            for entry in vendors.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let (name, model) = match entry.split_once(':') {
                    Some((name, model)) => (name, Some(model.trim())),
                    None => (entry, None),
                };
                let kind: VendorKind = name.parse().map_err(|e: VendorConfigError| {
                    bad(format!("profile {profile}: {}", e.problem))
                })?;
                if route.contains(&kind) {
                    return Err(bad(format!("profile {profile} names {kind} twice")));
                }
                match model {
                    Some("") => return Err(bad(format!("{entry:?}: no model after ':'"))),
                    Some(model) => {
                        table
                            .models
                            .insert((kind, profile.as_str().to_owned()), model.to_owned());
                    }
                    None => {}
                }
                route.push(kind);
            }
            if route.is_empty() {
                return Err(bad(format!("profile {profile} has no vendor")));
            }
            if table
                .by_profile
                .insert(profile.as_str().to_owned(), route)
                .is_some()
            {
                return Err(bad(format!("profile {profile} is routed twice")));
            }
        }
        Ok(table)
    }

    /// The vendors `profile`'s documents may go to, in order: its route, or `primary` alone.
    pub fn route(&self, primary: VendorKind, profile: &Profile) -> Vec<VendorKind> {
        self.by_profile
            .get(profile.as_str())
            .cloned()
            .unwrap_or_else(|| vec![primary])
    }

    /// Every vendor some route names, in the order of `VendorKind::ALL`.
    pub fn vendors(&self) -> Vec<VendorKind> {
        VendorKind::ALL
            .into_iter()
            .filter(|k| self.by_profile.values().any(|r| r.contains(k)))
            .collect()
    }

    /// `PROFILE=MODEL` entries the routes name for `kind`, in `VENDOR_MODELS`'s syntax.
    pub fn models_for(&self, kind: VendorKind) -> String {
        self.models
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, profile), model)| format!("{profile}={model}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A vendor of some route other than the stack's `VENDOR`, with its own rate budget.
#[derive(Debug, Clone)]
pub struct Routed<V> {
    pub vendor: V,
    pub budgets: Budgets,
}

/// One vendor's adapter and its rate budget, as a step uses them.
#[derive(Debug)]
pub struct Adapter<'a, V> {
    pub vendor: &'a V,
    pub budgets: &'a Budgets,
}

impl<V> Clone for Adapter<'_, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Adapter<'_, V> {}

impl<V: Vendor> Adapter<'_, V> {
    pub fn name(&self) -> &'static str {
        self.vendor.name()
    }
}

/// The job names a vendor this stack has no adapter for (`VENDOR_ROUTES` changed under it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job {job_id} went to vendor {vendor}, which this stack no longer routes to: add it back to VENDOR_ROUTES (with its settings) until its jobs are done")]
pub struct UnroutedVendor {
    pub job_id: String,
    pub vendor: String,
}

impl UnroutedVendor {
    fn of(job: &Job, vendor: &str) -> Self {
        UnroutedVendor {
            job_id: job.id.to_string(),
            vendor: vendor.to_owned(),
        }
    }
}

/// The routes and the adapters beyond the stack's `VENDOR` (which each function holds as its
/// `vendor`, with its `budgets`).
#[derive(Debug, Clone)]
pub struct Routes<V> {
    pub table: RouteTable,
    pub others: Vec<Routed<V>>,
}

impl<V> Default for Routes<V> {
    fn default() -> Self {
        Routes {
            table: RouteTable::default(),
            others: Vec::new(),
        }
    }
}

impl<V> Routes<V> {
    /// The same routes over other adapters (each wrapped, say).
    pub fn map<W>(self, mut wrap: impl FnMut(V) -> W) -> Routes<W> {
        Routes {
            table: self.table,
            others: self
                .others
                .into_iter()
                .map(|r| Routed {
                    vendor: wrap(r.vendor),
                    budgets: r.budgets,
                })
                .collect(),
        }
    }
}

impl<V: Vendor> Routes<V> {
    /// One vendor, no routes.
    pub fn none() -> Self {
        Self::default()
    }

    /// The routed vendor (not `VENDOR`) called `name`.
    fn other(&self, name: &str) -> Option<&Routed<V>> {
        self.others.iter().find(|r| r.vendor.name() == name)
    }

    /// The adapter and budgets for the vendor called `name`.
    pub fn named<'a>(&'a self, primary: Adapter<'a, V>, name: &str) -> Option<Adapter<'a, V>> {
        if primary.name() == name {
            return Some(primary);
        }
        self.other(name).map(|r| Adapter {
            vendor: &r.vendor,
            budgets: &r.budgets,
        })
    }

    /// `profile`'s route, as adapters. A vendor without an adapter cannot be in it: building
    /// the routes fails at init instead ([`Routes::build`]).
    pub fn route<'a>(&'a self, primary: Adapter<'a, V>, profile: &Profile) -> Vec<Adapter<'a, V>> {
        let Ok(primary_kind) = primary.name().parse::<VendorKind>() else {
            return vec![primary];
        };
        let route: Vec<_> = self
            .table
            .route(primary_kind, profile)
            .into_iter()
            .filter_map(|kind| self.named(primary, kind.as_str()))
            .collect();
        if route.is_empty() {
            vec![primary]
        } else {
            route
        }
    }

    /// The vendor that has, or may have, `job`: its latest attempt's, or the stack's `VENDOR`
    /// for jobs from before routes.
    pub fn of<'a>(
        &'a self,
        primary: Adapter<'a, V>,
        job: &Job,
    ) -> Result<Adapter<'a, V>, UnroutedVendor> {
        match job.vendor.as_deref() {
            None => Ok(primary),
            Some(name) => self
                .named(primary, name)
                .ok_or_else(|| UnroutedVendor::of(job, name)),
        }
    }

    /// [`Self::of`] for a caller that turned an unrouted job away up front (submit's and
    /// parse's handlers): every later step of theirs asks it, and it is routed.
    pub fn of_routed<'a>(&'a self, primary: Adapter<'a, V>, job: &Job) -> Adapter<'a, V> {
        self.of(primary, job).unwrap_or(primary)
    }

    /// [`Self::of`] for a caller without rate budgets (reconcile): the adapter alone.
    pub fn vendor_of<'a>(&'a self, primary: &'a V, job: &Job) -> Result<&'a V, UnroutedVendor> {
        match job.vendor.as_deref() {
            None => Ok(primary),
            Some(name) if primary.name() == name => Ok(primary),
            Some(name) => self
                .other(name)
                .map(|r| &r.vendor)
                .ok_or_else(|| UnroutedVendor::of(job, name)),
        }
    }

    /// Every adapter: `VENDOR`'s first.
    pub fn adapters<'a>(&'a self, primary: &'a V) -> impl Iterator<Item = &'a V> {
        std::iter::once(primary).chain(self.others.iter().map(|r| &r.vendor))
    }
}

/// The one routed vendor the template provisions (`RoutedVendor`), whose settings it passes as
/// `ROUTED_VENDOR_BASE_URL`, `ROUTED_VENDOR_MODELS`, `ROUTED_VENDOR_API_KEY_SECRET_ARN`…
const ROUTED_VENDOR: &str = "ROUTED_VENDOR";

/// A route vendor's settings: the same names under its own (`AZURE_VENDOR_BASE_URL` for
/// `VENDOR_BASE_URL`), or, for the vendor `ROUTED_VENDOR` names, under `ROUTED_`
/// (`ROUTED_VENDOR_BASE_URL`: what the template sets). Names that carry a vendor already, and
/// the routes themselves, are read as they are.
pub fn routed_lookup(
    kind: VendorKind,
    lookup: impl Fn(&str) -> Option<String>,
) -> impl Fn(&str) -> Option<String> {
    let upper = kind.as_str().to_ascii_uppercase();
    move |key: &str| match key {
        "VENDOR" => Some(kind.as_str().to_owned()),
        SETTING => lookup(key),
        _ if VendorKind::ALL
            .iter()
            .any(|k| key.starts_with(&format!("{}_", k.as_str().to_ascii_uppercase()))) =>
        {
            lookup(key)
        }
        _ => lookup(&format!("{upper}_{key}"))
            .filter(|v| !v.trim().is_empty())
            .or_else(|| {
                let templated = lookup(ROUTED_VENDOR).is_some_and(|v| v.trim() == kind.as_str());
                templated
                    .then(|| lookup(&format!("ROUTED_{key}")))
                    .flatten()
            }),
    }
}

impl Routes<AnyVendor> {
    /// The adapters `VENDOR_ROUTES` needs beyond `primary`, each from its own settings; a
    /// missing or wrong one fails at init with its name.
    pub fn build(
        primary: VendorKind,
        lookup: impl Fn(&str) -> Option<String> + Clone,
        clients: &AwsClients,
    ) -> Result<Self, VendorConfigError> {
        let table = RouteTable::parse(lookup(SETTING).as_deref())?;
        let mut others = Vec::new();
        for kind in table.vendors().into_iter().filter(|k| *k != primary) {
            let routed = routed_lookup(kind, lookup.clone());
            let settings = VendorSettings::from_lookup(&routed)?;
            let secret_setting = format!(
                "{}_VENDOR_API_KEY_SECRET_ARN",
                kind.as_str().to_ascii_uppercase()
            );
            let api_key_secret = match routed("VENDOR_API_KEY_SECRET_ARN") {
                Some(arn) if !arn.trim().is_empty() => arn,
                // Textract signs with the function's role: no key.
                _ if kind == VendorKind::Textract => String::new(),
                _ => {
                    return Err(VendorConfigError {
                        setting: "VENDOR_ROUTES",
                        problem: format!("{kind} is routed to, but {secret_setting} is not set"),
                    })
                }
            };
            let budgets =
                Budgets::for_vendor(kind.as_str(), &routed).map_err(|e| VendorConfigError {
                    setting: "VENDOR_ROUTES",
                    problem: format!("{kind}'s {}: {:?} is not {}", e.name, e.value, e.expected),
                })?;
            others.push(Routed {
                vendor: AnyVendor::build(&settings, clients, &api_key_secret)?,
                budgets,
            });
        }
        Ok(Routes { table, others })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(p: &str) -> Profile {
        Profile::new(p).unwrap()
    }

    #[test]
    fn a_route_lists_vendors_in_order_and_unnamed_profiles_go_to_the_stacks_vendor() {
        let t = RouteTable::parse(Some(
            "receipt=sim,azure:prebuilt-receipt; invoice = azure:prebuilt-invoice , mindee:abc-1",
        ))
        .unwrap();
        assert_eq!(
            t.route(VendorKind::Sim, &profile("receipt")),
            vec![VendorKind::Sim, VendorKind::Azure]
        );
        assert_eq!(
            t.route(VendorKind::Sim, &profile("invoice")),
            vec![VendorKind::Azure, VendorKind::Mindee]
        );
        assert_eq!(
            t.route(VendorKind::Textract, &profile("id")),
            vec![VendorKind::Textract]
        );
        assert_eq!(
            t.vendors(),
            vec![VendorKind::Sim, VendorKind::Azure, VendorKind::Mindee]
        );
        assert_eq!(
            t.models_for(VendorKind::Azure),
            "invoice=prebuilt-invoice,receipt=prebuilt-receipt"
        );
        assert_eq!(t.models_for(VendorKind::Mindee), "invoice=abc-1");
        assert_eq!(t.models_for(VendorKind::Sim), "");
        assert_eq!(RouteTable::parse(None).unwrap(), RouteTable::default());
    }

    #[test]
    fn a_bad_route_says_what_is_wrong_with_it() {
        for (spec, says) in [
            ("receipt", "is not PROFILE=VENDOR"),
            ("receipt=google", "not a vendor"),
            ("receipt=sim,sim", "names sim twice"),
            ("receipt=", "has no vendor"),
            ("receipt=azure:", "no model"),
            ("receipt=sim;receipt=azure", "routed twice"),
        ] {
            let err = RouteTable::parse(Some(spec)).unwrap_err();
            assert_eq!(err.setting, "VENDOR_ROUTES");
            assert!(err.problem.contains(says), "{spec}: {err}");
        }
    }

    #[test]
    fn a_routed_vendor_reads_its_settings_under_its_own_name() {
        let env = |k: &str| {
            Some(
                match k {
                    "AZURE_VENDOR_BASE_URL" => "https://fallback",
                    "VENDOR_BASE_URL" => "https://primary",
                    "TEXTRACT_SNS_TOPIC_ARN" => "arn:topic",
                    "TEXTRACT_ROLE_ARN" => "arn:role",
                    "VENDOR_ROUTES" => "receipt=sim,azure",
                    _ => return None,
                }
                .to_owned(),
            )
        };
        let azure = routed_lookup(VendorKind::Azure, env);
        assert_eq!(azure("VENDOR").as_deref(), Some("azure"));
        assert_eq!(
            azure("VENDOR_BASE_URL").as_deref(),
            Some("https://fallback")
        );
        assert_eq!(azure("VENDOR_ROUTES").as_deref(), Some("receipt=sim,azure"));
        let textract = routed_lookup(VendorKind::Textract, env);
        assert_eq!(
            textract("TEXTRACT_SNS_TOPIC_ARN").as_deref(),
            Some("arn:topic")
        );
        let settings = VendorSettings::from_lookup(&azure).unwrap();
        assert_eq!(settings.kind, VendorKind::Azure);
        assert_eq!(settings.base_url.as_deref(), Some("https://fallback"));
    }

    #[test]
    fn the_templates_routed_vendor_reads_the_routed_settings() {
        let env = |k: &str| {
            Some(
                match k {
                    "ROUTED_VENDOR" => "mindee",
                    "ROUTED_VENDOR_BASE_URL" => "https://mindee.example",
                    "ROUTED_VENDOR_MODELS" => "receipt=abc",
                    "MINDEE_VENDOR_MODELS" => "",
                    _ => return None,
                }
                .to_owned(),
            )
        };
        let mindee = routed_lookup(VendorKind::Mindee, env);
        assert_eq!(
            mindee("VENDOR_BASE_URL").as_deref(),
            Some("https://mindee.example")
        );
        assert_eq!(mindee("VENDOR_MODELS").as_deref(), Some("receipt=abc"));
        // Another vendor does not take them.
        let azure = routed_lookup(VendorKind::Azure, env);
        assert_eq!(azure("VENDOR_BASE_URL"), None);
    }
}
