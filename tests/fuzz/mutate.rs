//! A small mutator: byte-level edits, tokens that parsers treat specially (XML and JSON), and
//! splices of two inputs. Deterministic for a seed.

/// xorshift64*: enough randomness for mutation, reproducible from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.u64() % n as u64) as usize }
    }
    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const XML_TOKENS: &[&str] = &[
    "<",
    ">",
    "/>",
    "</",
    "&",
    "&amp;",
    "&lt;",
    "&#0;",
    "&#x110000;",
    "&#65;",
    "&unknown;",
    "\"",
    "'",
    "=",
    "<!--",
    "-->",
    "<!---->",
    "<![CDATA[",
    "]]>",
    "<?xml version=\"1.0\"?>",
    "<?pi x?>",
    "<!DOCTYPE a [<!ENTITY e \"x\">]>",
    "xmlns=\"\"",
    "xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"",
    "xml:id=\"a\"",
    " ID=\"_x\"",
    "\u{0}",
    "\u{1}",
    "\u{feff}",
    "\u{fffe}",
    "é",
    "𝄞",
    "ds:",
    "saml:",
    "samlp:",
    "<ds:Signature>",
    "<saml:Assertion>",
    "</saml:Assertion>",
    "<ds:Object>",
    "<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xslt-19991116\"/>",
    "Algorithm=\"\"",
    "#_x",
    "2026-01-15T10:00:00Z",
    "9999-12-31T23:59:59Z",
    "0000-01-01T00:00:00Z",
    "-1",
    "\n",
    "\t",
    " ",
];

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "null",
    "true",
    "false",
    "0",
    "-0",
    "1e309",
    "-9223372036854775809",
    "18446744073709551616",
    "0.0000001",
    "\"\"",
    "[]",
    "{}",
    "\u{0}",
    "é",
    "\u{202e}",
    "\"a@b.c\"",
    "\"%00\"",
    "\"../../etc/passwd\"",
    "\"<script>\"",
];

/// One to four byte-level edits of `input`, using `tokens` and pieces of `other`.
pub fn bytes(rng: &mut Rng, input: &[u8], other: &[u8], tokens: &[&str]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(9) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.u64() as u8;
            }
            2 => {
                let end = (at + 1 + rng.below(64)).min(v.len());
                v.drain(at..end);
            }
            3 if !v.is_empty() => {
                // Duplicate a span (repetition stresses nesting and counters).
                let start = rng.below(v.len());
                let end = (start + 1 + rng.below(256)).min(v.len());
                let span = v[start..end].to_vec();
                let most = if rng.chance(8) { 64 } else { 3 };
                let times = 1 + rng.below(most);
                for _ in 0..times {
                    v.splice(at..at, span.iter().copied());
                }
            }
            4 if !other.is_empty() => {
                // Splice: the head of this input, the tail of another.
                let cut = rng.below(other.len());
                v.truncate(at);
                v.extend_from_slice(&other[cut..]);
            }
            5 => v.truncate(at),
            _ => {
                let t = rng.pick(tokens).as_bytes();
                v.splice(at..at, t.iter().copied());
            }
        }
    }
    v
}

pub fn xml(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    bytes(rng, input, other, XML_TOKENS)
}

/// A JSON body: either a structural edit of the seed (values swapped for other types, fields
/// dropped or added) or a byte-level one.
pub fn json(rng: &mut Rng, seed: &serde_json::Value, other: &[u8]) -> Vec<u8> {
    if rng.chance(3) {
        let raw = serde_json::to_vec(seed).unwrap();
        return bytes(rng, &raw, other, JSON_TOKENS);
    }
    let mut v = seed.clone();
    for _ in 0..1 + rng.below(3) {
        edit(rng, &mut v, 0);
    }
    serde_json::to_vec(&v).unwrap()
}

fn edit(rng: &mut Rng, v: &mut serde_json::Value, depth: usize) {
    use serde_json::Value;
    match v {
        Value::Object(map) if !map.is_empty() && depth < 4 && !rng.chance(4) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let k = rng.pick(&keys).clone();
            match rng.below(6) {
                0 => {
                    map.remove(&k);
                }
                1 => {
                    map.insert(format!("{k}_extra"), any(rng, 0));
                }
                _ => edit(rng, map.get_mut(&k).unwrap(), depth + 1),
            }
        }
        Value::Array(items) if !items.is_empty() && depth < 4 && rng.chance(2) => {
            let i = rng.below(items.len());
            edit(rng, &mut items[i], depth + 1);
        }
        other => *other = any(rng, depth),
    }
}

fn any(rng: &mut Rng, depth: usize) -> serde_json::Value {
    use serde_json::{Value, json};
    match rng.below(12) {
        0 => Value::Null,
        1 => json!(rng.chance(2)),
        2 => json!(rng.u64() as i64),
        3 => json!(*rng.pick(&[0i64, -1, 1, i64::MAX, i64::MIN, 4_294_967_296])),
        4 => {
            let f = f64::from_bits(rng.u64());
            json!(if f.is_finite() { f } else { 0.5 })
        }
        5 => json!(""),
        6 => json!("x".repeat(rng.below(5000))),
        7 => json!(*rng.pick(&["a@b.c", "ACME", "fixed", "floating", "2026-01-01", "../x", "é", "\u{0}x", "%00"])),
        8 if depth < 3 => json!([any(rng, depth + 1), any(rng, depth + 1)]),
        9 if depth < 3 => json!({ "k": any(rng, depth + 1) }),
        10 => {
            // Deep nesting: parsers that recurse must not overflow their stack.
            let n = 1 + rng.below(3000);
            serde_json::from_str(&format!("{}{}", "[".repeat(n.min(120)), "]".repeat(n.min(120)))).unwrap()
        }
        _ => json!(rng.u64().to_string()),
    }
}
