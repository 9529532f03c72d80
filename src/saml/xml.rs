//! XML helpers shared by the SAML modules: namespaces and algorithm URIs, escaping, and the strict
//! well-formedness checks that run before any document reaches libxml2's recover-mode parser or
//! xmlsec.

use quick_xml::{NsReader, events::Event};

pub const NS_PROTOCOL: &[u8] = b"urn:oasis:names:tc:SAML:2.0:protocol";
pub const NS_ASSERTION: &[u8] = b"urn:oasis:names:tc:SAML:2.0:assertion";
pub const NS_DSIG: &[u8] = b"http://www.w3.org/2000/09/xmldsig#";
pub const NS_EXC_C14N: &[u8] = b"http://www.w3.org/2001/10/xml-exc-c14n#";

pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
pub const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
pub const RSA_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384";
pub const RSA_SHA512: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512";
pub const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
pub const ECDSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";
pub const ECDSA_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384";
pub const ECDSA_SHA512: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512";
pub const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
pub const SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#sha384";
pub const SHA512: &str = "http://www.w3.org/2001/04/xmlenc#sha512";
pub const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";

pub const BINDING_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
pub const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
pub const NAMEID_EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
pub const NAMEID_UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";
pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
pub const CM_BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// Strips a UTF-8 byte order mark (Azure's metadata starts with one).
pub fn strip_bom(s: &str) -> &str {
    s.strip_prefix('\u{feff}').unwrap_or(s)
}

/// libxml2 itself, without recover mode and without network access, must find the document
/// well-formed: samael parses in recover mode, which "repairs" broken documents into trees that
/// the quick-xml pre-scan never saw.
///
/// The document is UTF-8 (a Rust string, and the pre-scan refuses any other declared encoding),
/// so libxml2 is given no encoding name: the `libxml` crate (0.3.3) frees the C string of an
/// encoding it is given before the parser reads it, and under concurrent allocation the name
/// read was now and then garbage, the conversion failed and a valid response was refused as
/// "not well-formed" (valgrind: invalid read in `xmlFindCharEncodingHandler`). Without a name,
/// libxml2 reads UTF-8 natively; U+0000, which XML never allows, is refused first so that its
/// byte-pattern detection (UCS-4, UTF-16) has nothing else to find.
pub fn libxml_well_formed(xml: &str) -> bool {
    if xml.contains('\0') {
        return false;
    }
    super::libxml_ready();
    let options = libxml::parser::ParserOptions {
        recover: false,
        no_net: true,
        no_error: true,
        no_warning: true,
        encoding: None,
        ..Default::default()
    };
    libxml::parser::Parser::default().parse_string_with_options(xml, options).is_ok()
}

/// Why a document failed [`check_plain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlainXmlError {
    Dtd,
    NotXml(String),
}

/// A strict streaming pass for documents that are only parsed, never verified (IdP metadata):
/// well-formed, one root, UTF-8, no DOCTYPE, no processing instruction, no entity other than the
/// five predefined ones and character references.
pub fn check_plain(xml: &str) -> Result<(), PlainXmlError> {
    let mut r = NsReader::from_str(xml);
    r.config_mut().check_end_names = true;
    r.config_mut().check_comments = true;
    let (mut depth, mut roots) = (0usize, 0usize);
    loop {
        let (ns, ev) = r.read_resolved_event().map_err(|e| PlainXmlError::NotXml(e.to_string()))?;
        if matches!(ns, quick_xml::name::ResolveResult::Unknown(_)) {
            return Err(PlainXmlError::NotXml("an element uses an undeclared namespace prefix".into()));
        }
        match ev {
            Event::DocType(_) => return Err(PlainXmlError::Dtd),
            Event::PI(_) => return Err(PlainXmlError::NotXml("processing instructions are not accepted".into())),
            Event::Decl(d) => check_decl(&d).map_err(PlainXmlError::NotXml)?,
            Event::GeneralRef(g) => check_general_ref(&g).map_err(PlainXmlError::NotXml)?,
            Event::Start(_) => {
                if depth == 0 {
                    roots += 1;
                }
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(PlainXmlError::NotXml("elements are nested too deeply".into()));
                }
            }
            Event::Empty(_) if depth == 0 => roots += 1,
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Text(t) if depth == 0 && !t.iter().all(u8::is_ascii_whitespace) => {
                return Err(PlainXmlError::NotXml("text outside the root element".into()));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    match roots {
        1 => Ok(()),
        0 => Err(PlainXmlError::NotXml("no root element".into())),
        _ => Err(PlainXmlError::NotXml("more than one root element".into())),
    }
}

/// Deep enough for any SAML document (a Response is about 8 levels deep), shallow enough that
/// the recursive walkers in samael and serde cannot be driven into a stack overflow.
pub const MAX_DEPTH: usize = 48;

/// Only UTF-8 documents: a declared encoding that libxml2 honours but quick-xml ignores would let
/// the two parsers see different documents.
pub fn check_decl(d: &quick_xml::events::BytesDecl) -> Result<(), String> {
    match d.encoding() {
        None => Ok(()),
        Some(Ok(enc)) if enc.eq_ignore_ascii_case(b"utf-8") => Ok(()),
        Some(Ok(enc)) => Err(format!("only UTF-8 is accepted, not {}", String::from_utf8_lossy(&enc))),
        Some(Err(e)) => Err(format!("bad XML declaration: {e}")),
    }
}

pub fn check_general_ref(g: &quick_xml::events::BytesRef) -> Result<(), String> {
    if g.is_char_ref() {
        return match g.resolve_char_ref() {
            Ok(Some(_)) => Ok(()),
            _ => Err("invalid character reference".into()),
        };
    }
    match g.as_ref() {
        b"amp" | b"lt" | b"gt" | b"quot" | b"apos" => Ok(()),
        other => Err(format!("undefined entity &{};", String::from_utf8_lossy(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `libxml` crate frees an encoding name before libxml2 reads it (see
    /// [`libxml_well_formed`]): no parse of ours, nor of the vendored samael, may pass one.
    #[test]
    fn no_parser_options_name_an_encoding() {
        fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    rust_files(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in ["src", "vendor/samael/src", "benches", "tests"] {
            rust_files(&root.join(dir), &mut files);
        }
        assert!(files.len() > 50, "found only {} Rust files", files.len());
        let needle = ["encoding:", " Some("].concat();
        let offenders: Vec<_> = files
            .iter()
            .filter(|f| {
                let text = std::fs::read_to_string(f).unwrap_or_default();
                text.contains("ParserOptions") && text.contains(&needle)
            })
            .collect();
        assert!(offenders.is_empty(), "libxml ParserOptions with an encoding name in {offenders:?}");
    }

    #[test]
    fn the_xml_escape_we_use_covers_markup_and_both_quotes() {
        // The AuthnRequest and the SP metadata put values in double-quoted attributes and text.
        assert_eq!(
            quick_xml::escape::escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;"
        );
    }

    #[test]
    fn check_plain_refuses_dtd_pi_entities_and_garbage() {
        assert_eq!(check_plain("<!DOCTYPE a []><a/>"), Err(PlainXmlError::Dtd));
        assert!(matches!(check_plain("<?evil x?><a/>"), Err(PlainXmlError::NotXml(_))));
        assert!(matches!(check_plain("<a>&foo;</a>"), Err(PlainXmlError::NotXml(_))));
        assert!(matches!(check_plain("<a></b>"), Err(PlainXmlError::NotXml(_))));
        assert!(matches!(check_plain("<a/><b/>"), Err(PlainXmlError::NotXml(_))));
        assert!(matches!(check_plain("hello"), Err(PlainXmlError::NotXml(_))));
        assert!(matches!(check_plain("<x:a/>"), Err(PlainXmlError::NotXml(_))));
        assert!(matches!(check_plain(r#"<?xml version="1.0" encoding="UTF-7"?><a/>"#), Err(PlainXmlError::NotXml(_))));
        assert_eq!(check_plain(r#"<?xml version="1.0" encoding="utf-8"?><!-- c --><a>&amp;&#65;</a>"#), Ok(()));
    }

    #[test]
    fn libxml_strict_parse_refuses_what_recover_mode_would_repair() {
        assert!(libxml_well_formed("<a><b/></a>"));
        assert!(!libxml_well_formed("<a><b/></a><trailing"));
        assert!(!libxml_well_formed("<a><b/>"));
        assert!(!libxml_well_formed("<a>\u{1}</a>"));
        // Byte patterns libxml2 takes for UCS-4 or UTF-16 when given no encoding name.
        assert!(!libxml_well_formed("\0\0\0<a/>"));
        assert!(!libxml_well_formed("<\0?\0x\0m\0l\0 \0v\0"));
        assert!(!libxml_well_formed("<a>\0</a>"));
        // Declared UTF-8, any case, and non-ASCII text read as UTF-8.
        assert!(libxml_well_formed("<?xml version=\"1.0\" encoding=\"UTF-8\"?><a>caf\u{e9} \u{1F511}</a>"));
        assert!(libxml_well_formed("<?xml version=\"1.0\" encoding=\"utf-8\"?><a/>"));
    }
}
