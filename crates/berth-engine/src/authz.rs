//! Who may do what: every request is made by a [`Subject`], every object has an owner, and
//! every request is authorized in one place, [`Policy::authorize`]. Today the engine serves one
//! tenant (everyone who reaches its socket is its administrator, as with dockerd); the
//! multi-tenant service changes the policy, not the code paths.

use crate::{Error, Result};

/// The tenant that owns objects made by local clients (the unix socket, plain TCP).
pub const LOCAL_TENANT: &str = "local";

/// Who makes a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The tenant: [`LOCAL_TENANT`] on the unix socket; a TLS client's certificate subject.
    pub tenant: String,
}

impl Subject {
    /// A local client (the unix socket).
    pub fn local() -> Subject {
        Subject {
            tenant: LOCAL_TENANT.to_string(),
        }
    }
}

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See an object (inspect, list, logs, stats, top, events).
    Read,
    /// Change or use an object (start, stop, exec, attach, remove, tag, …).
    Write,
    /// Make a new object.
    Create,
    /// Ask for privileges beyond Docker's defaults (privileged, host namespaces, devices).
    Privileged,
    /// Engine-wide operations (prune of everything, daemon info with host details).
    System,
}

/// The rules.
pub trait Policy: Send + Sync {
    /// May `who` do `what` on an object owned by `owner` (None: a new object or the engine)?
    fn authorize(&self, who: &Subject, what: Action, owner: Option<&str>) -> Result<()>;
    /// May `who` see an object owned by `owner` at all (list filtering; a hidden object is
    /// "No such …", never "forbidden")?
    fn visible(&self, who: &Subject, owner: &str) -> bool;
}

/// One tenant: whoever reaches the engine administers it (dockerd's model).
#[derive(Debug, Default)]
pub struct SingleTenant;

impl Policy for SingleTenant {
    fn authorize(&self, _: &Subject, _: Action, _: Option<&str>) -> Result<()> {
        Ok(())
    }
    fn visible(&self, _: &Subject, _: &str) -> bool {
        true
    }
}

/// Tenants see and change only their own objects and get no privileges (the shape of the
/// hosted service; quotas come with it).
#[derive(Debug, Default)]
pub struct Tenants;

impl Policy for Tenants {
    fn authorize(&self, who: &Subject, what: Action, owner: Option<&str>) -> Result<()> {
        match what {
            Action::Privileged | Action::System => Err(Error::Forbidden(
                "this operation is not allowed for tenants of this service".into(),
            )),
            _ => match owner {
                Some(o) if o != who.tenant => Err(Error::Forbidden(
                    "the object belongs to another tenant".into(),
                )),
                _ => Ok(()),
            },
        }
    }
    fn visible(&self, who: &Subject, owner: &str) -> bool {
        owner == who.tenant
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_see_their_own_only() {
        let a = Subject { tenant: "a".into() };
        let p = Tenants;
        assert!(p.visible(&a, "a") && !p.visible(&a, "b"));
        assert!(p.authorize(&a, Action::Write, Some("a")).is_ok());
        assert!(p.authorize(&a, Action::Write, Some("b")).is_err());
        assert!(p.authorize(&a, Action::Privileged, None).is_err());
        assert!(SingleTenant.authorize(&a, Action::Privileged, None).is_ok());
    }
}
