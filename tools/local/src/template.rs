//! Reading `template.yaml` and resolving its intrinsic functions against provisioned resources.
//!
//! Only what the local stack needs is supported: `Ref`, `Fn::GetAtt`, `Fn::Sub` and `Fn::If`
//! (short `!Ref` forms and long `{"Fn::…": …}` forms), `AWS::NoValue`, pseudo parameters,
//! parameter defaults, and `Conditions` built from `Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`
//! and `Condition` (resources under a false condition are not provisioned). Anything else is an
//! error that names the construct, never a silent guess.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml::{Mapping, Value};

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("template.yaml is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("template.yaml: {0}")]
    Shape(String),
    /// A reference to a resource that is not provisioned (yet, or at all, locally).
    #[error("template.yaml refers to {0}, which the local stack has not provisioned")]
    Unresolved(String),
    #[error("template.yaml uses {0}, which the local stack cannot resolve")]
    Unsupported(String),
}

/// One resource as written in the template.
#[derive(Debug, Clone)]
pub struct ResourceDef {
    pub logical_id: String,
    pub kind: String,
    pub properties: Mapping,
    /// The name of the condition the resource exists under, if any.
    pub condition: Option<String>,
}

/// What `!Ref AWS::NoValue` resolves to before the key or item holding it is dropped.
const NO_VALUE: &str = "\u{0}AWS::NoValue";

/// The parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    root: Value,
}

impl Template {
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let root: Value = serde_yaml::from_str(text)?;
        if !root.get("Resources").is_some_and(Value::is_mapping) {
            return Err(TemplateError::Shape("no Resources mapping".into()));
        }
        Ok(Template { root })
    }

    /// Resources in template order.
    pub fn resources(&self) -> Vec<ResourceDef> {
        let Some(resources) = self.root.get("Resources").and_then(Value::as_mapping) else {
            return Vec::new();
        };
        resources
            .iter()
            .filter_map(|(id, def)| {
                Some(ResourceDef {
                    logical_id: id.as_str()?.to_owned(),
                    kind: def.get("Type")?.as_str()?.to_owned(),
                    properties: def
                        .get("Properties")
                        .and_then(Value::as_mapping)
                        .cloned()
                        .unwrap_or_default(),
                    condition: def
                        .get("Condition")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                })
            })
            .collect()
    }

    /// Parameter defaults, by name.
    pub fn parameter_defaults(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Some(params) = self.root.get("Parameters").and_then(Value::as_mapping) {
            for (name, def) in params {
                if let (Some(name), Some(default)) = (name.as_str(), def.get("Default")) {
                    if let Some(text) = scalar_to_string(default) {
                        out.insert(name.to_owned(), text);
                    }
                }
            }
        }
        out
    }

    /// The `Conditions` section, unevaluated.
    pub fn conditions(&self) -> Mapping {
        self.root
            .get("Conditions")
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_default()
    }

    /// `Globals.Function`, unresolved.
    pub fn global_function(&self) -> Mapping {
        self.root
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_default()
    }

    /// `Globals.Function.Environment.Variables`, unresolved.
    pub fn global_function_environment(&self) -> Mapping {
        self.global_function()
            .get("Environment")
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_default()
    }
}

pub fn scalar_to_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// What a provisioned resource answers to `Ref` and `Fn::GetAtt`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Physical {
    pub ref_value: String,
    pub attributes: BTreeMap<String, String>,
}

/// Everything intrinsics can refer to.
#[derive(Debug, Clone)]
pub struct Scope {
    pub stack_name: String,
    pub region: String,
    pub account_id: String,
    pub parameters: BTreeMap<String, String>,
    pub resources: BTreeMap<String, Physical>,
    /// The template's conditions, evaluated against the parameters.
    pub conditions: BTreeMap<String, bool>,
}

impl Scope {
    /// Evaluates every condition of `template` against the parameters (in any order: one may
    /// name another).
    pub fn evaluate_conditions(&mut self, template: &Template) -> Result<(), TemplateError> {
        let definitions = template.conditions();
        let names: Vec<String> = definitions
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect();
        for name in names {
            let value = self.condition(&name, &definitions, 0)?;
            self.conditions.insert(name, value);
        }
        Ok(())
    }

    fn condition(&self, name: &str, defs: &Mapping, depth: usize) -> Result<bool, TemplateError> {
        if let Some(v) = self.conditions.get(name) {
            return Ok(*v);
        }
        let def = defs
            .get(name)
            .ok_or_else(|| TemplateError::Shape(format!("no condition {name}")))?;
        self.truth(def, defs, depth + 1)
    }

    fn truth(&self, value: &Value, defs: &Mapping, depth: usize) -> Result<bool, TemplateError> {
        if depth > 32 {
            return Err(TemplateError::Shape(
                "conditions refer to each other in a cycle".into(),
            ));
        }
        let (name, arg) = match value {
            Value::Tagged(t) => (
                t.tag.to_string().trim_start_matches('!').to_owned(),
                &t.value,
            ),
            Value::Mapping(m) if m.len() == 1 => {
                let (k, v) = m
                    .iter()
                    .next()
                    .ok_or_else(|| TemplateError::Shape("empty condition".into()))?;
                (
                    k.as_str()
                        .unwrap_or_default()
                        .trim_start_matches("Fn::")
                        .to_owned(),
                    v,
                )
            }
            other => return Err(TemplateError::Shape(format!("not a condition: {other:?}"))),
        };
        let items = || arg.as_sequence().cloned().unwrap_or_default();
        match name.as_str() {
            "Equals" => {
                let items = items();
                let [a, b] = items.as_slice() else {
                    return Err(TemplateError::Shape("!Equals takes two values".into()));
                };
                Ok(self.resolve_string(a)? == self.resolve_string(b)?)
            }
            "Not" => Ok(!self.truth(items().first().unwrap_or(&Value::Null), defs, depth + 1)?),
            "And" => items()
                .iter()
                .try_fold(true, |acc, v| Ok(acc && self.truth(v, defs, depth + 1)?)),
            "Or" => items()
                .iter()
                .try_fold(false, |acc, v| Ok(acc || self.truth(v, defs, depth + 1)?)),
            "Condition" => self.condition(arg.as_str().unwrap_or_default(), defs, depth + 1),
            other => Err(TemplateError::Unsupported(format!(
                "!{other} in a condition"
            ))),
        }
    }

    /// Whether a resource with this `Condition` exists in the stack.
    pub fn holds(&self, condition: Option<&str>) -> bool {
        condition.is_none_or(|c| self.conditions.get(c).copied().unwrap_or(false))
    }

    fn pseudo(&self, name: &str) -> Option<String> {
        Some(match name {
            "AWS::StackName" => self.stack_name.clone(),
            "AWS::Region" => self.region.clone(),
            "AWS::AccountId" => self.account_id.clone(),
            "AWS::Partition" => "aws".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            "AWS::NoValue" => NO_VALUE.into(),
            _ => return None,
        })
    }

    fn reference(&self, name: &str) -> Result<String, TemplateError> {
        if let Some(v) = self.pseudo(name) {
            return Ok(v);
        }
        if let Some(v) = self.parameters.get(name) {
            return Ok(v.clone());
        }
        self.resources
            .get(name)
            .map(|p| p.ref_value.clone())
            .ok_or_else(|| TemplateError::Unresolved(name.to_owned()))
    }

    fn attribute(&self, resource: &str, attribute: &str) -> Result<String, TemplateError> {
        let physical = self
            .resources
            .get(resource)
            .ok_or_else(|| TemplateError::Unresolved(resource.to_owned()))?;
        physical
            .attributes
            .get(attribute)
            .cloned()
            .ok_or_else(|| TemplateError::Unsupported(format!("{resource}.{attribute}")))
    }

    fn sub(&self, text: &str) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            // `${!Literal}` is CloudFormation's escape for a literal `${Literal}`.
            if let Some(literal) = after.strip_prefix('!') {
                out.push_str("${");
                rest = literal;
                continue;
            }
            let end = after
                .find('}')
                .ok_or_else(|| TemplateError::Shape(format!("unclosed ${{ in !Sub {text:?}")))?;
            let name = &after[..end];
            let value = match name.split_once('.') {
                Some((resource, attribute)) if !name.starts_with("AWS::") => {
                    self.attribute(resource, attribute)?
                }
                _ => self.reference(name)?,
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Replaces every intrinsic in `value` by its resolved string.
    pub fn resolve(&self, value: &Value) -> Result<Value, TemplateError> {
        match value {
            Value::Tagged(tagged) => {
                let name = tagged.tag.to_string();
                self.intrinsic(name.trim_start_matches('!'), &tagged.value)
            }
            Value::Mapping(map) => {
                if map.len() == 1 {
                    if let Some((Value::String(key), arg)) = map.iter().next() {
                        if key == "Ref" || key.starts_with("Fn::") {
                            return self.intrinsic(key.trim_start_matches("Fn::"), arg);
                        }
                    }
                }
                let mut out = Mapping::new();
                for (k, v) in map {
                    let resolved = self.resolve(v)?;
                    if resolved.as_str() != Some(NO_VALUE) {
                        out.insert(k.clone(), resolved);
                    }
                }
                Ok(Value::Mapping(out))
            }
            Value::Sequence(items) => Ok(Value::Sequence(
                items
                    .iter()
                    .map(|v| self.resolve(v))
                    .filter(|v| !matches!(v, Ok(r) if r.as_str() == Some(NO_VALUE)))
                    .collect::<Result<_, _>>()?,
            )),
            other => Ok(other.clone()),
        }
    }

    /// Resolves `value` and requires a scalar.
    pub fn resolve_string(&self, value: &Value) -> Result<String, TemplateError> {
        let resolved = self.resolve(value)?;
        scalar_to_string(&resolved)
            .ok_or_else(|| TemplateError::Shape(format!("expected a scalar, found {resolved:?}")))
    }

    fn intrinsic(&self, name: &str, arg: &Value) -> Result<Value, TemplateError> {
        let text = match (name, arg) {
            ("Ref", Value::String(target)) => self.reference(target)?,
            ("GetAtt", Value::String(dotted)) => {
                let (resource, attribute) = dotted.split_once('.').ok_or_else(|| {
                    TemplateError::Shape(format!("!GetAtt {dotted} has no attribute"))
                })?;
                self.attribute(resource, attribute)?
            }
            ("GetAtt", Value::Sequence(parts)) if parts.len() == 2 => {
                let resource = parts[0].as_str().unwrap_or_default();
                let attribute = parts[1].as_str().unwrap_or_default();
                self.attribute(resource, attribute)?
            }
            ("Sub", Value::String(text)) => self.sub(text)?,
            ("If", Value::Sequence(parts)) if parts.len() == 3 => {
                let name = parts[0].as_str().unwrap_or_default();
                let holds = *self.conditions.get(name).ok_or_else(|| {
                    TemplateError::Shape(format!("!If names no condition {name}"))
                })?;
                return self.resolve(&parts[if holds { 1 } else { 2 }]);
            }
            (other, _) => return Err(TemplateError::Unsupported(format!("!{other}"))),
        };
        Ok(Value::String(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            stack_name: "stk".into(),
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            parameters: BTreeMap::from([("Env".to_owned(), "dev".to_owned())]),
            resources: BTreeMap::from([(
                "Q".to_owned(),
                Physical {
                    ref_value: "http://q".into(),
                    attributes: BTreeMap::from([("Arn".to_owned(), "arn:q".to_owned())]),
                },
            )]),
            conditions: BTreeMap::new(),
        }
    }

    #[test]
    fn conditions_pick_branches_and_drop_no_values() {
        let template = Template::parse(
            r#"
Parameters:
  Vendor: { Type: String, Default: textract }
Conditions:
  IsTextract: !Equals [!Ref Vendor, textract]
  NotTextract: !Not [!Condition IsTextract]
  Both: { "Fn::And": [!Condition IsTextract, !Equals [a, a]] }
Resources:
  X: { Type: AWS::SQS::Queue, Condition: NotTextract }
"#,
        )
        .unwrap();
        let mut scope = scope();
        scope.parameters.insert("Vendor".into(), "textract".into());
        scope.evaluate_conditions(&template).unwrap();
        assert!(scope.conditions["IsTextract"]);
        assert!(!scope.conditions["NotTextract"]);
        assert!(scope.conditions["Both"]);
        assert!(!scope.holds(template.resources()[0].condition.as_deref()));
        let doc: Value = serde_yaml::from_str(
            r#"
a: !If [IsTextract, !Ref Q, ""]
b: !If [NotTextract, x, !Ref AWS::NoValue]
c: [1, !If [NotTextract, 2, !Ref AWS::NoValue], 3]
"#,
        )
        .unwrap();
        let out = scope.resolve(&doc).unwrap();
        assert_eq!(out["a"], Value::from("http://q"));
        assert!(out.get("b").is_none(), "dropped");
        assert_eq!(out["c"].as_sequence().unwrap().len(), 2);
    }

    #[test]
    fn resolves_short_and_long_forms() {
        let doc: Value = serde_yaml::from_str(
            r#"
a: !Ref Q
b: !GetAtt Q.Arn
c: !Sub "${AWS::StackName}-x-${Env}-${Q.Arn}-${!Literal}"
d: { "Fn::GetAtt": [Q, Arn] }
e: { Ref: Env }
f: [!Ref AWS::Region, 5]
"#,
        )
        .unwrap();
        let out = scope().resolve(&doc).unwrap();
        assert_eq!(out["a"], Value::from("http://q"));
        assert_eq!(out["b"], Value::from("arn:q"));
        assert_eq!(out["c"], Value::from("stk-x-dev-arn:q-${Literal}"));
        assert_eq!(out["d"], Value::from("arn:q"));
        assert_eq!(out["e"], Value::from("dev"));
        assert_eq!(out["f"][0], Value::from("us-east-1"));
        assert_eq!(out["f"][1], Value::from(5));
    }

    #[test]
    fn unknown_references_are_errors_not_guesses() {
        let doc: Value = serde_yaml::from_str("a: !Ref Missing").unwrap();
        assert!(matches!(
            scope().resolve(&doc),
            Err(TemplateError::Unresolved(name)) if name == "Missing"
        ));
        let doc: Value = serde_yaml::from_str("a: !Join [',', [x]]").unwrap();
        assert!(matches!(
            scope().resolve(&doc),
            Err(TemplateError::Unsupported(_))
        ));
    }
}
