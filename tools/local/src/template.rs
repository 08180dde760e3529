//! Reading `template.yaml` and resolving its intrinsic functions against provisioned resources.
//!
//! Only what the local stack needs is supported: `Ref`, `Fn::GetAtt` and `Fn::Sub` (short `!Ref`
//! forms and long `{"Fn::…": …}` forms), pseudo parameters, and parameter defaults. Anything else is
//! an error that names the construct, never a silent guess.

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
}

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

    /// `Globals.Function.Environment.Variables`, unresolved.
    pub fn global_function_environment(&self) -> Mapping {
        self.root
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Environment"))
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
}

impl Scope {
    fn pseudo(&self, name: &str) -> Option<String> {
        Some(match name {
            "AWS::StackName" => self.stack_name.clone(),
            "AWS::Region" => self.region.clone(),
            "AWS::AccountId" => self.account_id.clone(),
            "AWS::Partition" => "aws".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
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
                    out.insert(k.clone(), self.resolve(v)?);
                }
                Ok(Value::Mapping(out))
            }
            Value::Sequence(items) => Ok(Value::Sequence(
                items
                    .iter()
                    .map(|v| self.resolve(v))
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
        }
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
