//! Merging of consecutive outbound UPDATEs: the RIB answers each originated or received prefix
//! with its own `Update`, so a burst of them (a big AddPrefixes, a peer's full table) would go
//! out one prefix per message. Consecutive announcements with identical attributes, and
//! consecutive withdrawals, merge into one `Update` (the codec splits it into 4 KB messages).
//! Only the last pending update is a merge candidate, so the order of changes to one prefix is
//! kept. No I/O.

use crate::message::{PathAttributes, Update};

/// What kind of update this is, for merging.
enum Shape {
    /// Classic IPv4 announcement: attributes + `nlri`.
    Announce,
    /// Classic IPv4 withdrawal: `withdrawn` only.
    Withdraw,
    /// MP_REACH announcement only (other attributes alongside).
    MpAnnounce,
    /// MP_UNREACH withdrawal only.
    MpWithdraw,
    Other,
}

fn shape(update: &Update) -> Shape {
    let attributes = &update.attributes;
    let classic_empty = update.withdrawn.is_empty() && update.nlri.is_empty();
    match (&attributes.mp_reach, &attributes.mp_unreach) {
        (None, None) if update.withdrawn.is_empty() && !update.nlri.is_empty() => Shape::Announce,
        (None, None) if update.nlri.is_empty() && !update.withdrawn.is_empty() => {
            if *attributes == PathAttributes::default() {
                Shape::Withdraw
            } else {
                Shape::Other
            }
        }
        (Some(reach), None) if classic_empty && !reach.nlri.is_empty() => Shape::MpAnnounce,
        (None, Some(unreach)) if classic_empty && !unreach.withdrawn.is_empty() => {
            let rest = PathAttributes {
                mp_unreach: None,
                ..attributes.clone()
            };
            if rest == PathAttributes::default() {
                Shape::MpWithdraw
            } else {
                Shape::Other
            }
        }
        _ => Shape::Other,
    }
}

/// Appends `update` to `pending`, merged into the last one when they are compatible.
pub fn push_merged(pending: &mut Vec<Update>, mut update: Update) {
    let Some(last) = pending.last_mut() else {
        pending.push(update);
        return;
    };
    match (shape(last), shape(&update)) {
        (Shape::Announce, Shape::Announce) if last.attributes == update.attributes => {
            last.nlri.append(&mut update.nlri);
        }
        (Shape::Withdraw, Shape::Withdraw) => last.withdrawn.append(&mut update.withdrawn),
        (Shape::MpAnnounce, Shape::MpAnnounce) => {
            let (Some(a), Some(b)) = (
                &mut last.attributes.mp_reach,
                &mut update.attributes.mp_reach,
            ) else {
                return pending.push(update);
            };
            let same = a.family == b.family
                && a.next_hops == b.next_hops
                && PathAttributes {
                    mp_reach: None,
                    ..last.attributes.clone()
                } == PathAttributes {
                    mp_reach: None,
                    ..update.attributes.clone()
                };
            if !same {
                return pending.push(update);
            }
            if let (Some(a), Some(b)) = (
                &mut last.attributes.mp_reach,
                &mut update.attributes.mp_reach,
            ) {
                a.nlri.append(&mut b.nlri);
            }
        }
        (Shape::MpWithdraw, Shape::MpWithdraw) => {
            match (
                &mut last.attributes.mp_unreach,
                &mut update.attributes.mp_unreach,
            ) {
                (Some(a), Some(b)) if a.family == b.family => a.withdrawn.append(&mut b.withdrawn),
                _ => pending.push(update),
            }
        }
        _ => pending.push(update),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::message::{Family, MpReach, MpUnreach, Nlri};

    fn nlri(text: &str) -> Nlri {
        Nlri {
            prefix: text.parse().unwrap(),
            path_id: None,
        }
    }

    fn announce(prefix: &str, med: u32) -> Update {
        Update {
            attributes: PathAttributes {
                next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
                med: Some(med),
                ..PathAttributes::default()
            },
            nlri: vec![nlri(prefix)],
            ..Update::default()
        }
    }

    fn withdraw(prefix: &str) -> Update {
        Update {
            withdrawn: vec![nlri(prefix)],
            ..Update::default()
        }
    }

    #[test]
    fn merges_consecutive_compatible_updates_only() {
        let mut pending = Vec::new();
        push_merged(&mut pending, announce("10.0.0.0/24", 1));
        push_merged(&mut pending, announce("10.0.1.0/24", 1));
        push_merged(&mut pending, announce("10.0.2.0/24", 2));
        push_merged(&mut pending, withdraw("10.0.0.0/24"));
        push_merged(&mut pending, withdraw("10.0.1.0/24"));
        push_merged(&mut pending, announce("10.0.0.0/24", 2));
        assert_eq!(pending.len(), 4);
        assert_eq!(pending[0].nlri.len(), 2);
        assert_eq!(pending[2].withdrawn.len(), 2);
        // End-of-RIB (an empty UPDATE) never merges.
        push_merged(&mut pending, Update::end_of_rib(Family::IPV4_UNICAST));
        push_merged(&mut pending, Update::end_of_rib(Family::IPV4_UNICAST));
        assert_eq!(pending.len(), 6);
    }

    #[test]
    fn merges_mp_reach_and_unreach() {
        let reach = |prefix: &str| Update {
            attributes: PathAttributes {
                mp_reach: Some(MpReach {
                    family: Family::IPV6_UNICAST,
                    next_hops: vec!["2001:db8::1".parse().unwrap()],
                    nlri: vec![nlri(prefix)],
                }),
                ..PathAttributes::default()
            },
            ..Update::default()
        };
        let unreach = |prefix: &str| Update {
            attributes: PathAttributes {
                mp_unreach: Some(MpUnreach {
                    family: Family::IPV6_UNICAST,
                    withdrawn: vec![nlri(prefix)],
                }),
                ..PathAttributes::default()
            },
            ..Update::default()
        };
        let mut pending = Vec::new();
        push_merged(&mut pending, reach("2001:db8:1::/48"));
        push_merged(&mut pending, reach("2001:db8:2::/48"));
        push_merged(&mut pending, unreach("2001:db8:1::/48"));
        push_merged(&mut pending, unreach("2001:db8:2::/48"));
        push_merged(&mut pending, Update::end_of_rib(Family::IPV6_UNICAST));
        assert_eq!(pending.len(), 3);
        assert_eq!(
            pending[0].attributes.mp_reach.as_ref().unwrap().nlri.len(),
            2
        );
        assert_eq!(
            pending[1]
                .attributes
                .mp_unreach
                .as_ref()
                .unwrap()
                .withdrawn
                .len(),
            2
        );
    }
}
