//! NetworkPolicies + pods + services -> one nftables ruleset. Pure; the fault profiles are deliberate deviations here.
