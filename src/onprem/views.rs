//! The JSON bodies this area answers with, as the OpenAPI document describes them. The handlers
//! build their answers as these types, so the document and the answer are one definition.
//!
//! Members are declared in alphabetical order (of their names in JSON): the answers were built
//! with `json!` before, whose objects serialise their members sorted, and the same order keeps
//! them byte for byte as they were (the tests below check it).

use serde::Serialize;
use utoipa::ToSchema;

/// The entitlement file of a license moved to an on-premise server.
#[derive(Serialize, ToSchema)]
pub struct OnPremEntitlement {
    /// compact JWS, `typ` `entitlement+jwt`: what to import on the server
    pub entitlement: String,
    /// when the entitlement ends; RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// identifier (UUID)
    pub license_id: String,
    /// the seats the server serves
    pub seats: i64,
    /// RFC 7638 thumbprint of the server's key
    pub server: String,
    /// the server's id, from its fingerprint
    pub server_id: String,
}

/// What an on-premise server's usage file added to the usage report.
#[derive(Serialize, ToSchema)]
pub struct OnPremUsageImported {
    /// how many days of the license the file reported
    pub days: u64,
    /// the file's first day, YYYY-MM-DD
    pub from: String,
    /// identifier (UUID)
    pub license_id: String,
    /// the file's last day, YYYY-MM-DD
    pub to: String,
}

/// A license an on-premise server gave back.
#[derive(Serialize, ToSchema)]
pub struct OnPremReturned {
    /// identifier (UUID)
    pub license_id: String,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub returned_at: String,
    /// always `online`: the license is served here again
    #[schema(value_type = String, pattern = "^online$")]
    pub status: &'static str,
}

/// An offline license file for one computer.
#[derive(Serialize, ToSchema)]
pub struct OfflineLicense {
    /// when the file stops working; RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// the file's id (its `jti`)
    pub jti: String,
    /// the seat it holds (identifier, UUID)
    pub lease_id: String,
    /// compact JWS, `typ` `offline-license+jwt`
    pub license_file: String,
    /// identifier (UUID)
    pub license_id: String,
}

/// An offline license given back: its seat is free.
#[derive(Serialize, ToSchema)]
pub struct OfflineReturned {
    /// the file's id (its `jti`)
    pub jti: String,
    /// identifier (UUID)
    pub license_id: String,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub returned_at: String,
}

/// An entitlement imported on an on-premise server.
#[derive(Serialize, ToSchema)]
pub struct EntitlementImported {
    /// the license was new here (false: an entitlement of it was imported before)
    pub created_license: bool,
    /// the entity's slug
    pub entity: String,
    /// when the entitlement ends; RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// identifier (UUID), the same as at the vendor
    pub license_id: String,
    /// the product's SKU
    pub product: String,
    /// the seats served here
    pub seats: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_doc::assert_as_json_macro;

    #[test]
    fn views_serialise_their_members_sorted() {
        let at = || "2026-11-30T09:00:00Z".to_string();
        let s = |v: &str| v.to_string();
        assert_as_json_macro(&OnPremEntitlement {
            entitlement: s("eyJ"),
            expires_at: at(),
            license_id: s("l"),
            seats: 5,
            server: s("t"),
            server_id: s("srv"),
        });
        assert_as_json_macro(&OnPremUsageImported {
            days: 3,
            from: s("2026-11-01"),
            license_id: s("l"),
            to: s("2026-11-03"),
        });
        assert_as_json_macro(&OnPremReturned { license_id: s("l"), returned_at: at(), status: "online" });
        assert_as_json_macro(&OfflineLicense {
            expires_at: at(),
            jti: s("j"),
            lease_id: s("e"),
            license_file: s("eyJ"),
            license_id: s("l"),
        });
        assert_as_json_macro(&OfflineReturned { jti: s("j"), license_id: s("l"), returned_at: at() });
        assert_as_json_macro(&EntitlementImported {
            created_license: true,
            entity: s("acme"),
            expires_at: at(),
            license_id: s("l"),
            product: s("p"),
            seats: 5,
        });
    }
}
