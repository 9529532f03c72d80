//! SCIM input: the filter parser (the `filter` query parameter of every list) and the PATCH
//! parser (every PATCH body), seeded with the shapes Okta and Entra ID send. No input may panic or
//! hang; a filter that parses must print back to itself (parse, print, parse gives the same tree),
//! and planning it into a query must not panic either.

use latchkey::scim::{self, filter};
use serde_json::{Value, json};

use crate::{budget, check, mutate, regressions, rng};

const FILTER_TOKENS: &[&str] = &[
    " and ",
    " or ",
    " not ",
    "(",
    ")",
    "[",
    "]",
    ".",
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    " eq ",
    " pr",
    " co ",
    " sw ",
    " gt ",
    "true",
    "null",
    "1e309",
    "-0",
    "urn:ietf:params:scim:schemas:core:2.0:User:",
    "emails",
    "members",
    "value",
    "type",
    "é",
    "\u{202e}",
    " ",
    "\t",
];

fn filter_seeds() -> Vec<Vec<u8>> {
    [
        r#"userName eq "alice@example.com""#,
        r#"externalId eq "00u1ab2cd3" and userName eq "a@b.c""#,
        r#"emails[type eq "work"].value eq "bob@example.com""#,
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x""#,
        r#"displayName eq "Engineering""#,
        r#"id eq "g1" and members[value eq "u1"]"#,
        r#"title pr and (userType eq "Employee" or not (active eq false))"#,
        r#"meta.lastModified gt "2011-05-13T04:42:34Z" and name.familyName co "O'Malley""#,
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp"]"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn run_filter(input: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(input);
    let Ok(f) = filter::parse(&text) else { return Ok(()) };
    let _ = scim::plan_user_filter(&f);
    let _ = scim::plan_group_filter(&f);
    let shown = f.to_string();
    match filter::parse(&shown) {
        Ok(again) if again == f => Ok(()),
        Ok(again) => Err(format!("`{text}` printed as `{shown}` parses to another filter: {again:?}")),
        // Printing adds parentheses and escapes: only the depth and length limits may refuse it.
        Err(e) if e.why.contains("deeper") || e.why.contains("longer") => Ok(()),
        Err(e) => Err(format!("`{text}` printed as `{shown}` does not parse: {e}")),
    }
}

#[test]
fn scim_filters_never_panic_and_print_back_to_themselves() {
    for input in regressions("scim_filter") {
        check("scim_filter", &input, run_filter);
    }
    let seeds = filter_seeds();
    let mut rng = rng("scim_filter");
    let started = std::time::Instant::now();
    let mut n = 0usize;
    while started.elapsed() < budget() {
        let seed = rng.pick(&seeds);
        let other = rng.pick(&seeds);
        let input = mutate::bytes(&mut rng, seed, other, FILTER_TOKENS);
        check("scim_filter", &input, run_filter);
        n += 1;
    }
    eprintln!("fuzz scim_filter: {n} inputs from {} seeds", seeds.len());
    assert!(n > 50, "too few inputs in the budget: {n}");
}

fn patch_seeds() -> Vec<Value> {
    let p = scim::PATCH_URN;
    vec![
        json!({ "schemas": [p], "Operations": [{ "op": "replace", "value": { "active": false } }] }),
        json!({ "schemas": [p], "Operations": [
            { "op": "Replace", "path": "emails[type eq \"work\"].value", "value": "a@b.example" },
            { "op": "Replace", "path": "active", "value": "False" },
            { "op": "Add", "value": { "displayName": "A B", "name.givenName": "A",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "department": "QA" } } },
        ]}),
        json!({ "schemas": [p], "Operations": [
            { "op": "Add", "path": "members", "value": [{ "value": "u1" }, { "value": "u2" }] },
            { "op": "Remove", "path": "members", "value": [{ "value": "u3" }] },
            { "op": "remove", "path": "members[value eq \"u4\" or value eq \"u5\"]" },
            { "op": "replace", "value": { "id": "g", "displayName": "Eng", "members": [{ "value": "u9" }] } },
        ]}),
        json!({ "Operations": [{ "op": "remove", "path": "externalId" }, { "op": "add", "path": "emails",
            "value": [{ "value": "a@b.example", "type": "work", "primary": true }] }] }),
    ]
}

fn run_patch(input: &[u8]) -> Result<(), String> {
    let Ok(body) = scim::decode_body(input) else { return Ok(()) };
    let Ok(ops) = scim::patch::operations(&body) else { return Ok(()) };
    let _ = scim::patch::user_change(&ops);
    let _ = scim::patch::group_change(&ops);
    // A POST/PUT body goes through the same attribute reader.
    let mut c = scim::patch::UserChange::default();
    let _ = scim::patch::user_object(&mut c, scim::patch::Op::Replace, &body);
    Ok(())
}

#[test]
fn scim_patch_bodies_never_panic() {
    for input in regressions("scim_patch") {
        check("scim_patch", &input, run_patch);
    }
    let seeds = patch_seeds();
    let raw: Vec<Vec<u8>> = seeds.iter().map(|s| serde_json::to_vec(s).unwrap()).collect();
    let mut rng = rng("scim_patch");
    let started = std::time::Instant::now();
    let mut n = 0usize;
    while started.elapsed() < budget() {
        let seed = rng.pick(&seeds);
        let other = rng.pick(&raw);
        let input = mutate::json(&mut rng, seed, other);
        check("scim_patch", &input, run_patch);
        n += 1;
    }
    eprintln!("fuzz scim_patch: {n} inputs from {} seeds", seeds.len());
    assert!(n > 50, "too few inputs in the budget: {n}");
}
