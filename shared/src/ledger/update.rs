//! A small builder for DynamoDB update and condition expressions.
//!
//! Every attribute goes through a `#name` placeholder (several of ours, like `state`, are DynamoDB
//! reserved words), and every value through a `:value` placeholder, so expressions never embed data.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

#[derive(Debug, Default)]
pub struct Expr {
    sets: Vec<String>,
    removes: Vec<String>,
    adds: Vec<String>,
    conditions: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    pub fn new() -> Self {
        Self::default()
    }

    fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#{attribute}");
        self.names.insert(placeholder.clone(), attribute.to_owned());
        placeholder
    }

    fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    /// `SET #attribute = :value`
    pub fn set(&mut self, attribute: &str, value: AttributeValue) -> &mut Self {
        let name = self.name(attribute);
        let value = self.value(value);
        self.sets.push(format!("{name} = {value}"));
        self
    }

    /// `SET #attribute = #attribute + :by`
    pub fn increment(&mut self, attribute: &str, by: u64) -> &mut Self {
        let name = self.name(attribute);
        let value = self.value(AttributeValue::N(by.to_string()));
        self.sets.push(format!("{name} = {name} + {value}"));
        self
    }

    /// `ADD #attribute :set`: adds `value` to a string set (created if absent).
    pub fn add_to_set(&mut self, attribute: &str, value: &str) -> &mut Self {
        let name = self.name(attribute);
        let value = self.value(AttributeValue::Ss(vec![value.to_owned()]));
        self.adds.push(format!("{name} {value}"));
        self
    }

    /// `ADD #attribute :n`: adds to a number (0 if absent).
    pub fn add_number(&mut self, attribute: &str, by: u64) -> &mut Self {
        let name = self.name(attribute);
        let value = self.value(AttributeValue::N(by.to_string()));
        self.adds.push(format!("{name} {value}"));
        self
    }

    /// `SET #attribute = list_append(if_not_exists(#attribute, :empty), [:entry])`: appends to
    /// a list (created if absent).
    pub fn append(&mut self, attribute: &str, entry: AttributeValue) -> &mut Self {
        self.append_all(attribute, vec![entry])
    }

    /// As [`Self::append`], several entries in order (one path may be set once per update).
    pub fn append_all(&mut self, attribute: &str, entries: Vec<AttributeValue>) -> &mut Self {
        let name = self.name(attribute);
        let empty = self.value(AttributeValue::L(Vec::new()));
        let entry = self.value(AttributeValue::L(entries));
        self.sets.push(format!(
            "{name} = list_append(if_not_exists({name}, {empty}), {entry})"
        ));
        self
    }

    /// `SET #map.#key = :value`: one entry of a map attribute (the map must exist).
    pub fn set_entry(&mut self, map: &str, key: &str, value: AttributeValue) -> &mut Self {
        let (map, key) = (self.name(map), self.name(key));
        let value = self.value(value);
        self.sets.push(format!("{map}.{key} = {value}"));
        self
    }

    /// `REMOVE #attribute`
    pub fn remove(&mut self, attribute: &str) -> &mut Self {
        let name = self.name(attribute);
        self.removes.push(name);
        self
    }

    /// `#attribute = :value`
    pub fn require_eq(&mut self, attribute: &str, value: AttributeValue) -> &mut Self {
        let name = self.name(attribute);
        let value = self.value(value);
        self.conditions.push(format!("{name} = {value}"));
        self
    }

    /// `#attribute IN (:a, :b, …)`; an empty set can never match.
    pub fn require_in(&mut self, attribute: &str, values: Vec<AttributeValue>) -> &mut Self {
        let name = self.name(attribute);
        if values.is_empty() {
            // DynamoDB rejects `IN ()`; a comparison that is false for every item says the same.
            self.conditions.push(format!(
                "attribute_not_exists({name}) AND attribute_exists({name})"
            ));
            return self;
        }
        let placeholders: Vec<String> = values.into_iter().map(|v| self.value(v)).collect();
        self.conditions
            .push(format!("{name} IN ({})", placeholders.join(", ")));
        self
    }

    /// `attribute_not_exists(#attribute)`
    pub fn require_absent(&mut self, attribute: &str) -> &mut Self {
        let name = self.name(attribute);
        self.conditions
            .push(format!("attribute_not_exists({name})"));
        self
    }

    /// `attribute_not_exists(#map.#key)`: the map has no such entry.
    pub fn require_no_entry(&mut self, map: &str, key: &str) -> &mut Self {
        let (map, key) = (self.name(map), self.name(key));
        self.conditions
            .push(format!("attribute_not_exists({map}.{key})"));
        self
    }

    /// `(attribute_not_exists(#attribute) OR #attribute <= :bound)`: absent, or at or before `bound`.
    pub fn require_absent_or_at_most(
        &mut self,
        attribute: &str,
        bound: AttributeValue,
    ) -> &mut Self {
        let name = self.name(attribute);
        let value = self.value(bound);
        self.conditions.push(format!(
            "(attribute_not_exists({name}) OR {name} <= {value})"
        ));
        self
    }

    pub fn update_expression(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.sets.is_empty() {
            parts.push(format!("SET {}", self.sets.join(", ")));
        }
        if !self.removes.is_empty() {
            parts.push(format!("REMOVE {}", self.removes.join(", ")));
        }
        if !self.adds.is_empty() {
            parts.push(format!("ADD {}", self.adds.join(", ")));
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    pub fn condition_expression(&self) -> Option<String> {
        (!self.conditions.is_empty()).then(|| self.conditions.join(" AND "))
    }

    pub fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    pub fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_placeholdered_expressions() {
        let mut e = Expr::new();
        e.set("state", AttributeValue::S("Queued".into()))
            .increment("version", 1)
            .remove("lease_owner")
            .require_eq("version", AttributeValue::N("4".into()))
            .require_in("state", vec![AttributeValue::S("Received".into())]);
        assert_eq!(
            e.update_expression().unwrap(),
            "SET #state = :v0, #version = #version + :v1 REMOVE #lease_owner"
        );
        assert_eq!(
            e.condition_expression().unwrap(),
            "#version = :v2 AND #state IN (:v3)"
        );
        assert_eq!(e.names().unwrap().len(), 3);
        assert_eq!(e.values().unwrap().len(), 4);
    }

    #[test]
    fn empty_in_never_matches_instead_of_failing_validation() {
        let mut e = Expr::new();
        e.require_in("state", vec![]);
        assert_eq!(
            e.condition_expression().unwrap(),
            "attribute_not_exists(#state) AND attribute_exists(#state)"
        );
    }
}
