//! Import and export policy evaluation, no I/O: the first rule whose prefix list, community
//! list and extended community list match decides; with none, `default_accept` (false by
//! default: RFC 8212, nothing is exchanged with an eBGP peer unless a rule accepts it).
//! Accepting rules may add communities (plain, extended, large) and set MED or LOCAL_PREF.

use ipnet::IpNet;

use super::{Policy, PolicyAction, PolicyRule, PrefixMatch};
use crate::message::PathAttributes;

/// The outcome of a policy for one route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Decision {
    Reject,
    /// Accepted by the rule at this index (its modifications apply), or by default.
    Accept(Option<usize>),
}

impl PrefixMatch {
    pub fn matches(&self, prefix: &IpNet) -> bool {
        let len = prefix.prefix_len();
        self.prefix.contains(prefix) && self.min_len <= len && len <= self.max_len
    }
}

impl PolicyRule {
    /// Every condition that is set must hold: prefix list, communities, extended communities,
    /// and for an `originated` rule, that the route is the speaker's own (`originated`).
    pub fn matches(&self, prefix: &IpNet, attrs: &PathAttributes, originated: bool) -> bool {
        if self.originated && !originated {
            return false;
        }
        let prefix_ok = self.prefixes.is_empty() || self.prefixes.iter().any(|m| m.matches(prefix));
        let community_ok = self.communities_any.is_empty()
            || self
                .communities_any
                .iter()
                .any(|c| attrs.communities.contains(c));
        let extended_ok = self.extended_communities_any.is_empty()
            || self
                .extended_communities_any
                .iter()
                .any(|c| attrs.extended_communities.contains(c));
        prefix_ok && community_ok && extended_ok
    }

    /// Applies the rule's modifications; `local_pref` false where LOCAL_PREF is not carried.
    pub(crate) fn apply(&self, attrs: &mut PathAttributes, local_pref: bool) {
        for community in &self.add_communities {
            if !attrs.communities.contains(community) {
                attrs.communities.push(*community);
            }
        }
        for community in &self.add_extended_communities {
            if !attrs.extended_communities.contains(community) {
                attrs.extended_communities.push(*community);
            }
        }
        for community in &self.add_large_communities {
            if !attrs.large_communities.contains(community) {
                attrs.large_communities.push(*community);
            }
        }
        if let Some(med) = self.set_med {
            attrs.med = Some(med);
        }
        if local_pref && let Some(local_pref) = self.set_local_pref {
            attrs.local_pref = Some(local_pref);
        }
    }
}

impl Policy {
    /// `originated`: the route is the speaker's own (always false on import).
    pub(crate) fn decide(
        &self,
        prefix: &IpNet,
        attrs: &PathAttributes,
        originated: bool,
    ) -> Decision {
        let matched = self
            .rules
            .iter()
            .position(|rule| rule.matches(prefix, attrs, originated));
        match matched {
            Some(index) => match self.rules[index].action {
                PolicyAction::Accept => Decision::Accept(Some(index)),
                PolicyAction::Reject => Decision::Reject,
            },
            None if self.default_accept => Decision::Accept(None),
            None => Decision::Reject,
        }
    }

    /// The rule an `Accept(Some(index))` refers to.
    pub(crate) fn rule(&self, decision: Decision) -> Option<&PolicyRule> {
        match decision {
            Decision::Accept(Some(index)) => self.rules.get(index),
            _ => None,
        }
    }
}
