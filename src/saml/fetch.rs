//! Fetching IdP metadata from a URL, guarded: `https://` only (plain `http://` only in insecure
//! mode, for tests), no credentials in the URL, a size and a time limit, at most three redirects
//! and never to another scheme, and no fetch from an address a server must not be steered to
//! (loopback, link-local where cloud metadata services answer, unspecified, multicast, known
//! metadata-service addresses), checked on every hop after resolving the name and then pinned,
//! so a DNS answer cannot change between the check and the connection.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use url::{Host, Url};

/// The largest metadata document taken (Entra ID's, the largest of the vendors', is ~60 KiB).
pub const MAX_BYTES: usize = 2 * 1024 * 1024;
/// The whole fetch, redirects included.
pub const TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_REDIRECTS: usize = 3;

/// Check a metadata URL before anything is fetched.
pub fn check_url(raw: &str, insecure: bool) -> Result<Url, String> {
    if raw.len() > 2048 {
        return Err("the URL is longer than 2048 characters".into());
    }
    let u = Url::parse(raw.trim()).map_err(|e| format!("`{raw}` is not a URL: {e}"))?;
    match u.scheme() {
        "https" => {}
        "http" if insecure => {}
        "http" => {
            return Err("metadata URLs must use https:// (the metadata decides whose signatures are trusted)".into());
        }
        other => return Err(format!("metadata URLs use https://, not {other}:")),
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("the URL must not carry credentials".into());
    }
    if u.host().is_none() {
        return Err("the URL has no host".into());
    }
    Ok(u)
}

/// Why an address must not be fetched from, when it must not.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_link_local() {
                Some("link-local (where cloud metadata services answer)")
            } else if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() {
                Some("unspecified, broadcast or multicast")
            } else if v4.octets() == [100, 100, 100, 200] || v4.octets() == [192, 0, 0, 192] {
                Some("cloud metadata service")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() || v6.is_multicast() {
                Some("unspecified or multicast")
            } else if seg[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if seg == [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254] {
                Some("cloud metadata service")
            } else {
                None
            }
        }
    }
}

/// The addresses of the URL's host, every one checked.
async fn addresses(u: &Url, insecure: bool) -> Result<Vec<SocketAddr>, String> {
    let port = u.port_or_known_default().ok_or("the URL has no port")?;
    let addrs: Vec<SocketAddr> = match u.host() {
        Some(Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Some(Host::Domain(d)) => tokio::net::lookup_host((d, port))
            .await
            .map_err(|e| format!("the host `{d}` does not resolve: {e}"))?
            .collect(),
        None => return Err("the URL has no host".into()),
    };
    if addrs.is_empty() {
        return Err("the host resolves to no address".into());
    }
    if !insecure {
        for a in &addrs {
            if let Some(why) = forbidden(a.ip()) {
                return Err(format!(
                    "the host resolves to {}, a {why} address: metadata is not fetched from there",
                    a.ip()
                ));
            }
        }
    }
    Ok(addrs)
}

/// Fetch the metadata document at `url` (checked with `check_url` first).
pub async fn fetch(url: &str, insecure: bool) -> Result<String, String> {
    match tokio::time::timeout(TIMEOUT, fetch_inner(url, insecure)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no complete answer within {} s", TIMEOUT.as_secs())),
    }
}

async fn fetch_inner(url: &str, insecure: bool) -> Result<String, String> {
    let mut current = check_url(url, insecure)?;
    for hop in 0..=MAX_REDIRECTS {
        let addrs = addresses(&current, insecure).await?;
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(TIMEOUT)
            .user_agent(concat!("latchkey/", env!("CARGO_PKG_VERSION"), " (IdP metadata refresh)"));
        if let Some(Host::Domain(d)) = current.host() {
            // Connect only to the addresses just checked.
            b = b.resolve_to_addrs(d, &addrs);
        }
        let client = b.build().map_err(|e| format!("HTTP client: {e}"))?;
        let mut resp = client
            .get(current.clone())
            .header(reqwest::header::ACCEPT, "application/samlmetadata+xml, application/xml, text/xml")
            .send()
            .await
            .map_err(|e| format!("fetching {current}: {}", without_url(&e)))?;
        let status = resp.status();
        if status.is_redirection() {
            if hop == MAX_REDIRECTS {
                return Err(format!("more than {MAX_REDIRECTS} redirects"));
            }
            let loc = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| format!("a redirect ({status}) without a Location"))?;
            let next = current.join(loc).map_err(|e| format!("a redirect to an invalid URL: {e}"))?;
            if next.scheme() != "https" && !(insecure && next.scheme() == "http") {
                return Err(format!("redirected to a {}: URL; only https:// is followed", next.scheme()));
            }
            current = check_url(next.as_str(), insecure)?;
            continue;
        }
        if !status.is_success() {
            return Err(format!("{current} answered HTTP {}", status.as_u16()));
        }
        if resp.content_length().is_some_and(|n| n > MAX_BYTES as u64) {
            return Err(format!("the document is larger than {} KiB", MAX_BYTES / 1024));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("reading the document: {}", without_url(&e)))? {
            if body.len() + chunk.len() > MAX_BYTES {
                return Err(format!("the document is larger than {} KiB", MAX_BYTES / 1024));
            }
            body.extend_from_slice(&chunk);
        }
        return String::from_utf8(body).map_err(|_| "the document is not UTF-8 text".to_string());
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "the URL");
    }
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_urls_without_credentials_are_taken() {
        assert!(check_url("https://idp.example.com/metadata", false).is_ok());
        assert!(check_url("http://idp.example.com/metadata", false).unwrap_err().contains("https"));
        assert!(check_url("http://127.0.0.1:9/m", true).is_ok());
        for bad in
            ["file:///etc/passwd", "ftp://idp.example.com/m", "gopher://x/", "https://u:p@idp.example.com/m", "nope"]
        {
            assert!(check_url(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_link_local_and_metadata_service_addresses_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "fd00:ec2::254",
            "100.100.100.200",
            "224.0.0.1",
        ] {
            assert!(forbidden(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["203.0.113.7", "10.1.2.3", "2001:db8::1"] {
            assert!(forbidden(ip.parse().unwrap()).is_none(), "{ip}");
        }
    }
}
