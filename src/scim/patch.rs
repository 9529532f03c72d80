//! SCIM PATCH (RFC 7644 §3.5.2) as IdPs send it: op names in any case (`"Replace"`), operations
//! without a path (the value is an object of attributes, whose keys may themselves be paths such
//! as `name.givenName`), `"True"`/`"False"` strings for booleans, value-filtered paths such as
//! `emails[type eq "work"].value` and `members[value eq "..."]`. This module turns a body into
//! operations with parsed paths, then into the changes a User or a Group takes; everything that
//! cannot be understood is refused with the RFC's error types, before anything changes.

use serde_json::{Map, Value};

use super::{
    ScimError, ScimResult, attr,
    filter::{self, AttrPath, Filter, Op as FOp},
    parse_bool,
};

/// The most operations one PATCH may carry.
pub const MAX_OPS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Replace,
    Remove,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub op: Op,
    pub path: Option<AttrPath>,
    pub value: Option<Value>,
}

/// Read the `Operations` of a PATCH body.
pub fn operations(body: &Map<String, Value>) -> ScimResult<Vec<Operation>> {
    if let Some(schemas) = attr(body, "schemas") {
        let ok = schemas.as_array().is_some_and(|a| a.iter().any(|s| s.as_str() == Some(super::PATCH_URN)));
        if !ok {
            return Err(ScimError::bad("invalidSyntax", format!("`schemas` must hold `{}`", super::PATCH_URN)));
        }
    }
    let Some(ops) = attr(body, "Operations") else {
        return Err(ScimError::bad("invalidSyntax", "a PATCH body holds an `Operations` array"));
    };
    let Some(ops) = ops.as_array() else {
        return Err(ScimError::bad("invalidSyntax", "`Operations` must be an array"));
    };
    if ops.is_empty() || ops.len() > MAX_OPS {
        return Err(ScimError::bad("invalidSyntax", format!("`Operations` holds 1 to {MAX_OPS} operations")));
    }
    ops.iter().enumerate().map(|(i, o)| operation(i, o)).collect()
}

fn operation(i: usize, o: &Value) -> ScimResult<Operation> {
    let Some(o) = o.as_object() else {
        return Err(ScimError::bad("invalidSyntax", format!("operation {i} is not an object")));
    };
    let op = match attr(o, "op").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
        Some("add") => Op::Add,
        Some("replace") => Op::Replace,
        Some("remove") => Op::Remove,
        Some(other) => {
            return Err(ScimError::bad(
                "invalidSyntax",
                format!("operation {i}: `op` is `{}`; use add, replace or remove", other.escape_default()),
            ));
        }
        None => return Err(ScimError::bad("invalidSyntax", format!("operation {i} has no `op` string"))),
    };
    let path = match attr(o, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.trim().is_empty() => None,
        Some(Value::String(p)) => Some(
            filter::parse_path(p)
                .map_err(|e| ScimError::bad("invalidPath", format!("operation {i}: the path does not parse: {e}")))?,
        ),
        Some(_) => return Err(ScimError::bad("invalidPath", format!("operation {i}: `path` must be a string"))),
    };
    let value = attr(o, "value").cloned();
    match (op, &path, &value) {
        (Op::Remove, None, _) => {
            Err(ScimError::bad("noTarget", format!("operation {i}: a remove names the attribute in `path`")))
        }
        (Op::Add | Op::Replace, _, None) => {
            Err(ScimError::bad("invalidValue", format!("operation {i}: an {op:?} carries a `value`").to_lowercase()))
        }
        (Op::Add | Op::Replace, None, Some(v)) if !v.is_object() => Err(ScimError::bad(
            "invalidValue",
            format!("operation {i}: without a path, the value is an object of attributes"),
        )),
        _ => Ok(Operation { op, path, value }),
    }
}

/// What a PATCH or PUT changes in a User (absent: unchanged).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UserChange {
    pub user_name: Option<String>,
    /// The work address the IdP sent (must be the userName: one address per account).
    pub work_emails: Vec<String>,
    pub external_id: Option<Option<String>>,
    pub active: Option<bool>,
}

fn string_value(path: &str, v: &Value) -> ScimResult<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => Err(ScimError::bad("invalidValue", format!("`{path}` takes a string"))),
    }
}

/// The work (or primary) address of an `emails` array, if any.
pub fn work_emails(v: &Value) -> ScimResult<Vec<String>> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![v],
        Value::Null => vec![],
        _ => return Err(ScimError::bad("invalidValue", "`emails` takes an array of {\"value\",\"type\"} objects")),
    };
    let mut out = Vec::new();
    for item in items {
        let Some(o) = item.as_object() else {
            return Err(ScimError::bad("invalidValue", "`emails` takes an array of {\"value\",\"type\"} objects"));
        };
        let is_work = attr(o, "type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("work"));
        let primary = attr(o, "primary").and_then(parse_bool).unwrap_or(false);
        if (is_work || primary)
            && let Some(v) = attr(o, "value")
        {
            out.push(string_value("emails.value", v)?);
        }
    }
    Ok(out)
}

/// Apply one attribute (by path) of a User to `c`. Attributes latchkey does not keep (names,
/// titles, phone numbers, enterprise extension, ...) are accepted and ignored: the service stores
/// an account's address and nothing else about the person.
fn user_attribute(c: &mut UserChange, op: Op, path: &AttrPath, value: Option<&Value>) -> ScimResult<()> {
    let shown = path.to_string();
    if let Some(urn) = path.urn()
        && urn != filter::USER_URN
    {
        return Ok(());
    }
    let name = path.attr.to_ascii_lowercase();
    match (name.as_str(), op) {
        ("id" | "meta" | "schemas", _) => {
            Err(ScimError::bad("mutability", format!("`{shown}` is set by the service and cannot be changed")))
        }
        ("username", Op::Remove) => Err(ScimError::bad("mutability", "`userName` is required and cannot be removed")),
        ("username", _) if path.sub.is_none() && path.filter.is_none() => {
            c.user_name = Some(string_value("userName", value.unwrap_or(&Value::Null))?);
            Ok(())
        }
        ("externalid", Op::Remove) => {
            c.external_id = Some(None);
            Ok(())
        }
        ("externalid", _) if path.sub.is_none() && path.filter.is_none() => {
            c.external_id = Some(match value {
                Some(Value::Null) | None => None,
                Some(v) => Some(string_value("externalId", v)?),
            });
            Ok(())
        }
        ("active", Op::Remove) => {
            Err(ScimError::bad("mutability", "`active` cannot be removed; replace it with true or false"))
        }
        ("active", _) if path.sub.is_none() && path.filter.is_none() => {
            let v = value.unwrap_or(&Value::Null);
            c.active = Some(parse_bool(v).ok_or_else(|| {
                ScimError::bad("invalidValue", format!("`active` takes true or false (or \"True\"/\"False\"), not {v}"))
            })?);
            Ok(())
        }
        ("emails", Op::Remove) => Ok(()),
        ("emails", _) => {
            let Some(v) = value else { return Ok(()) };
            match (&path.filter, path.sub.as_deref().map(str::to_ascii_lowercase).as_deref()) {
                (None, None) => c.work_emails.extend(work_emails(v)?),
                (f, Some("value")) => match filter::selects_work(f) {
                    Some(true) => c.work_emails.push(string_value(&shown, v)?),
                    Some(false) => {}
                    None => {
                        return Err(ScimError::bad(
                            "invalidPath",
                            format!("`{shown}`: address paths select by `type eq \"...\"` or `primary eq true`"),
                        ));
                    }
                },
                (Some(_), None) => {
                    if filter::selects_work(&path.filter) == Some(true)
                        && let Some(o) = v.as_object()
                        && let Some(addr) = attr(o, "value")
                    {
                        c.work_emails.push(string_value(&shown, addr)?);
                    }
                }
                _ => {}
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Fold PATCH operations into one User change.
pub fn user_change(ops: &[Operation]) -> ScimResult<UserChange> {
    let mut c = UserChange::default();
    for o in ops {
        match &o.path {
            Some(p) => user_attribute(&mut c, o.op, p, o.value.as_ref())?,
            None => {
                let Some(Value::Object(m)) = &o.value else { continue };
                user_object(&mut c, o.op, m)?;
            }
        }
    }
    Ok(c)
}

/// The attributes of a path-less operation, or of a POST/PUT body: each key is a path.
pub fn user_object(c: &mut UserChange, op: Op, m: &Map<String, Value>) -> ScimResult<()> {
    for (k, v) in m {
        // An extension schema's attributes arrive as an object under its URN: none is kept.
        if k.to_ascii_lowercase().starts_with("urn:") && v.is_object() {
            continue;
        }
        let path = filter::parse_path(k)
            .map_err(|e| ScimError::bad("invalidPath", format!("attribute `{}`: {e}", k.escape_default())))?;
        if matches!(path.attr.to_ascii_lowercase().as_str(), "id" | "meta" | "schemas") {
            // Echoed back by some clients in PUT bodies; never changes anything.
            continue;
        }
        user_attribute(c, op, &path, Some(v))?;
    }
    Ok(())
}

/// What a PATCH or PUT changes in a Group.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GroupChange {
    pub display_name: Option<String>,
    pub external_id: Option<Option<String>>,
    /// Replace the whole membership with this list.
    pub set_members: Option<Vec<String>>,
    pub add_members: Vec<String>,
    pub remove_members: Vec<String>,
    pub remove_all_members: bool,
}

/// Member ids of a `members` value: `[{"value":"id"}, ...]` or one such object.
pub fn member_ids(v: &Value) -> ScimResult<Vec<String>> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![v],
        Value::Null => vec![],
        _ => return Err(ScimError::bad("invalidValue", "`members` takes an array of {\"value\":\"<user id>\"}")),
    };
    items
        .into_iter()
        .map(|i| match i.as_object().and_then(|o| attr(o, "value")) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(ScimError::bad("invalidValue", "each member is an object with a `value` (the user's id)")),
        })
        .collect()
}

/// The member ids a `members[...]` value filter names: `value eq "id"`, joined with `or`.
fn filtered_ids(f: &Filter, out: &mut Vec<String>) -> ScimResult<()> {
    match f {
        Filter::Compare(p, FOp::Eq, filter::Value::Str(id)) if p.is("value", None) => {
            out.push(id.clone());
            Ok(())
        }
        Filter::Or(a, b) => {
            filtered_ids(a, out)?;
            filtered_ids(b, out)
        }
        _ => Err(ScimError::bad(
            "invalidFilter",
            format!("members are selected with `value eq \"<user id>\"` (joined with or), not `{f}`"),
        )),
    }
}

fn group_attribute(c: &mut GroupChange, op: Op, path: &AttrPath, value: Option<&Value>) -> ScimResult<()> {
    let shown = path.to_string();
    if let Some(urn) = path.urn()
        && urn != filter::GROUP_URN
    {
        return Ok(());
    }
    match (path.attr.to_ascii_lowercase().as_str(), op) {
        ("id" | "meta" | "schemas", _) => {
            Err(ScimError::bad("mutability", format!("`{shown}` is set by the service and cannot be changed")))
        }
        ("displayname", Op::Remove) => Err(ScimError::bad("mutability", "`displayName` is required")),
        ("displayname", _) => {
            c.display_name = Some(string_value("displayName", value.unwrap_or(&Value::Null))?);
            Ok(())
        }
        ("externalid", Op::Remove) => {
            c.external_id = Some(None);
            Ok(())
        }
        ("externalid", _) => {
            c.external_id = Some(match value {
                Some(Value::Null) | None => None,
                Some(v) => Some(string_value("externalId", v)?),
            });
            Ok(())
        }
        ("members", op) => {
            if path.sub.as_deref().is_some_and(|s| !s.eq_ignore_ascii_case("value")) {
                return Err(ScimError::bad("invalidPath", format!("`{shown}`: members are changed by their `value`")));
            }
            let mut selected = Vec::new();
            if let Some(f) = &path.filter {
                filtered_ids(f, &mut selected)?;
            }
            match op {
                Op::Add => c.add_members.extend(member_ids(value.unwrap_or(&Value::Null))?),
                Op::Replace if path.filter.is_none() => {
                    let ids = member_ids(value.unwrap_or(&Value::Null))?;
                    c.set_members = Some(ids);
                    c.add_members.clear();
                    c.remove_members.clear();
                    c.remove_all_members = false;
                }
                Op::Replace => {
                    // Replacing selected members with others: the selected leave, the value joins.
                    c.remove_members.extend(selected);
                    c.add_members.extend(member_ids(value.unwrap_or(&Value::Null))?);
                }
                Op::Remove => match (path.filter.is_some(), value) {
                    (true, _) => c.remove_members.extend(selected),
                    // Entra: remove `members` with the leavers in the value: only those leave.
                    (false, Some(v)) if !v.is_null() => c.remove_members.extend(member_ids(v)?),
                    (false, _) => {
                        c.remove_all_members = true;
                        c.add_members.clear();
                        c.set_members = None;
                    }
                },
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

pub fn group_change(ops: &[Operation]) -> ScimResult<GroupChange> {
    let mut c = GroupChange::default();
    for o in ops {
        match &o.path {
            Some(p) => group_attribute(&mut c, o.op, p, o.value.as_ref())?,
            None => {
                let Some(Value::Object(m)) = &o.value else { continue };
                for (k, v) in m {
                    let path = filter::parse_path(k).map_err(|e| {
                        ScimError::bad("invalidPath", format!("attribute `{}`: {e}", k.escape_default()))
                    })?;
                    if path.attr.eq_ignore_ascii_case("id") {
                        continue;
                    }
                    group_attribute(&mut c, o.op, &path, Some(v))?;
                }
            }
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ops(v: Value) -> ScimResult<Vec<Operation>> {
        operations(v.as_object().unwrap())
    }

    #[test]
    fn entra_shapes_become_the_same_change_as_okta_shapes() {
        let entra = ops(json!({"schemas":[super::super::PATCH_URN],"Operations":[
            {"op":"Replace","path":"active","value":"False"},
            {"op":"Add","path":"emails[type eq \"work\"].value","value":"a@b.example"},
            {"op":"Replace","value":{"externalId":"e1","name.givenName":"A","displayName":"A B"}},
        ]}))
        .unwrap();
        let c = user_change(&entra).unwrap();
        assert_eq!(c.active, Some(false));
        assert_eq!(c.work_emails, vec!["a@b.example".to_string()]);
        assert_eq!(c.external_id, Some(Some("e1".into())));
        let okta = ops(json!({"Operations":[{"op":"replace","value":{"active":false}}]})).unwrap();
        assert_eq!(user_change(&okta).unwrap().active, Some(false));
        let t = ops(json!({"Operations":[{"op":"REPLACE","path":"active","value":"true"}]})).unwrap();
        assert_eq!(user_change(&t).unwrap().active, Some(true));
    }

    #[test]
    fn bad_operations_are_refused_with_their_rfc_types() {
        let cases = [
            (json!({}), "invalidSyntax"),
            (json!({"Operations":[]}), "invalidSyntax"),
            (json!({"Operations":[{"op":"move","path":"active","value":true}]}), "invalidSyntax"),
            (json!({"Operations":[{"path":"active","value":true}]}), "invalidSyntax"),
            (json!({"Operations":[{"op":"remove"}]}), "noTarget"),
            (json!({"Operations":[{"op":"replace","path":"active"}]}), "invalidValue"),
            (json!({"Operations":[{"op":"replace","value":"x"}]}), "invalidValue"),
            (json!({"Operations":[{"op":"replace","path":"emails[type eq","value":"x"}]}), "invalidPath"),
            (json!({"schemas":["urn:x"],"Operations":[{"op":"add","path":"x","value":1}]}), "invalidSyntax"),
        ];
        for (body, t) in cases {
            let e = ops(body.clone()).expect_err(&body.to_string());
            assert_eq!(e.scim_type, Some(t), "{body}: {}", e.detail);
        }
        let user_cases = [
            (json!({"Operations":[{"op":"replace","path":"active","value":"nope"}]}), "invalidValue"),
            (json!({"Operations":[{"op":"remove","path":"userName"}]}), "mutability"),
            (json!({"Operations":[{"op":"replace","path":"id","value":"x"}]}), "mutability"),
            (json!({"Operations":[{"op":"replace","path":"userName","value":7}]}), "invalidValue"),
        ];
        for (body, t) in user_cases {
            let e = user_change(&ops(body.clone()).unwrap()).expect_err(&body.to_string());
            assert_eq!(e.scim_type, Some(t), "{body}: {}", e.detail);
        }
    }

    #[test]
    fn group_member_operations_touch_only_the_listed_members() {
        let c = group_change(
            &ops(json!({"Operations":[
                {"op":"Add","path":"members","value":[{"value":"u1"},{"value":"u2"}]},
                {"op":"Remove","path":"members","value":[{"value":"u3"}]},
                {"op":"remove","path":"members[value eq \"u4\" or value eq \"u5\"]"},
            ]}))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(c.add_members, vec!["u1", "u2"]);
        assert_eq!(c.remove_members, vec!["u3", "u4", "u5"]);
        assert!(!c.remove_all_members && c.set_members.is_none());
        let c = group_change(&ops(json!({"Operations":[{"op":"remove","path":"members"}]})).unwrap()).unwrap();
        assert!(c.remove_all_members);
        let c = group_change(
            &ops(json!({"Operations":[{"op":"replace","value":{"displayName":"Eng","members":[{"value":"u9"}]}}]}))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(c.display_name.as_deref(), Some("Eng"));
        assert_eq!(c.set_members, Some(vec!["u9".to_string()]));
        let e = group_change(&ops(json!({"Operations":[{"op":"remove","path":"members[display co \"x\"]"}]})).unwrap())
            .unwrap_err();
        assert_eq!(e.scim_type, Some("invalidFilter"));
    }
}
