//! Defensive reading of netlink attributes (`struct nlattr` lists) in kernel replies.
//!
//! Replies are read with these few helpers rather than with full typed parsers: only the
//! handful of attributes this crate reports are looked at, so an attribute a newer kernel adds,
//! or one a parser library does not know, can never make a listing fail. Malformed input is
//! an error, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The mask removing `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER` from an attribute type.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// Iterates over the attributes of `buf`: `(type, value)` pairs, then at most one error if
/// the list is malformed.
pub(crate) struct Attrs<'a> {
    rest: &'a [u8],
}

pub(crate) fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs { rest: buf }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.rest);
        let (Some(len), Some(kind)) = (rest.get(0..2), rest.get(2..4)) else {
            return Some(Err(format!(
                "truncated attribute header ({} bytes)",
                rest.len()
            )));
        };
        let len = usize::from(u16::from_ne_bytes([len[0], len[1]]));
        let kind = u16::from_ne_bytes([kind[0], kind[1]]) & NLA_TYPE_MASK;
        let Some(value) = rest.get(4..len) else {
            return Some(Err(format!(
                "attribute {kind} has length {len}, {} bytes left",
                rest.len()
            )));
        };
        // Attributes are padded to 4 bytes; the last one's padding may be missing.
        self.rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
        Some(Ok((kind, value)))
    }
}

/// A native-endian `u32` attribute value.
pub(crate) fn u32_value(kind: u16, value: &[u8]) -> Result<u32, String> {
    value
        .try_into()
        .map(u32::from_ne_bytes)
        .map_err(|_| format!("attribute {kind}: {} bytes for a u32", value.len()))
}

/// A string attribute value, up to its first NUL. Interface names are bytes to the kernel;
/// ones that are not UTF-8 are shown lossily rather than refused.
pub(crate) fn string_value(value: &[u8]) -> String {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end]).into_owned()
}

/// An address attribute value: 4 bytes for IPv4, 16 for IPv6.
pub(crate) fn ip_value(kind: u16, value: &[u8]) -> Result<IpAddr, String> {
    if let Ok(v4) = <[u8; 4]>::try_from(value) {
        Ok(IpAddr::V4(Ipv4Addr::from(v4)))
    } else if let Ok(v6) = <[u8; 16]>::try_from(value) {
        Ok(IpAddr::V6(Ipv6Addr::from(v6)))
    } else {
        Err(format!(
            "attribute {kind}: {} bytes for an IP address",
            value.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&u16::try_from(value.len() + 4).unwrap().to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn iterates_and_masks_flags() {
        let mut buf = nla(3, b"eth0\0");
        buf.extend(nla(0x8000 | 18, &nla(1, b"veth\0")));
        buf.extend(nla(4, &1500u32.to_ne_bytes()));
        let got: Vec<_> = attrs(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0, 3);
        assert_eq!(string_value(got[0].1), "eth0");
        assert_eq!(got[1].0, 18);
        let inner: Vec<_> = attrs(got[1].1).collect::<Result<_, _>>().unwrap();
        assert_eq!(string_value(inner[0].1), "veth");
        assert_eq!(u32_value(4, got[2].1).unwrap(), 1500);
    }

    #[test]
    fn malformed_is_an_error_not_a_panic() {
        // Length shorter than a header, longer than the buffer, a truncated header.
        for buf in [
            &[2u8, 0, 1, 0][..],
            &[200, 0, 1, 0, 0, 0, 0, 0][..],
            &[8, 0, 1][..],
        ] {
            let got: Vec<_> = attrs(buf).collect();
            assert_eq!(got.len(), 1);
            assert!(got[0].is_err());
        }
        // Missing padding after the last attribute is tolerated.
        let buf = [5u8, 0, 1, 0, 7];
        let got: Vec<_> = attrs(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(got, vec![(1, &[7u8][..])]);
        assert!(u32_value(1, &[1, 2]).is_err());
        assert!(ip_value(1, &[1, 2, 3]).is_err());
        assert_eq!(
            ip_value(1, &[10, 0, 0, 1]).unwrap(),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(string_value(b"no-nul"), "no-nul");
    }
}
