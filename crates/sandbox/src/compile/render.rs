//! The rule model printed as one `nft -f -` batch: a direct transcription of it.

use super::model::{Allow, Dnat, Exposure, Hairpin, Otherwise, Peer, PodChain, Ruleset, L4};
use ipnet::IpNet;
use std::net::IpAddr;

pub(super) fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "ip"
    } else {
        "ip6"
    }
}

fn net_family(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "ip",
        IpNet::V6(_) => "ip6",
    }
}

/// `items` split by address family, IPv4 first, without an empty group: one nft line per group.
fn by_family<T>(items: impl Iterator<Item = T>, is_v4: impl Fn(&T) -> bool) -> Vec<Vec<T>> {
    let (v4, v6): (Vec<T>, Vec<T>) = items.partition(is_v4);
    [v4, v6].into_iter().filter(|g| !g.is_empty()).collect()
}

/// One element bare, several as an anonymous set.
pub(super) fn set<T: std::fmt::Display>(items: &[T]) -> String {
    match items {
        [one] => one.to_string(),
        many => {
            let inner: Vec<String> = many.iter().map(|i| i.to_string()).collect();
            format!("{{ {} }}", inner.join(", "))
        }
    }
}

/// An nft comment: printable ASCII without quotes or backslashes, within nft's 128-byte limit.
fn comment(text: &str) -> String {
    let mut clean: String = text
        .chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '?',
        })
        .collect();
    clean.truncate(120);
    format!("comment \"{clean}\"")
}

fn l4_match(l4: &L4) -> String {
    match *l4 {
        L4::Any => String::new(),
        L4::Protocol(p) => format!("meta l4proto {} ", p.lower()),
        L4::Ports {
            protocol,
            first,
            last,
        } if first == last => format!("{} dport {first} ", protocol.lower()),
        L4::Ports {
            protocol,
            first,
            last,
        } => format!("{} dport {first}-{last} ", protocol.lower()),
    }
}

/// The nft rules for one allow (`verdict` `return`) or deny (`drop`); `field` is `saddr`
/// (ingress) or `daddr` (egress). Several lines when a pod set spans both address families.
fn allow_rules(a: &Allow, field: &str, verdict: &str) -> Vec<String> {
    let tail = format!("{}{verdict} {}", l4_match(&a.l4), comment(&a.origin));
    match &a.peer {
        Peer::Any => vec![tail],
        Peer::Pods(ips) => by_family(ips.iter().copied(), IpAddr::is_ipv4)
            .iter()
            .map(|ips| format!("{} {field} {} {tail}", family(&ips[0]), set(ips)))
            .collect(),
        Peer::Block { cidr, except } => {
            let fam = net_family(cidr);
            let exclude = if except.is_empty() {
                String::new()
            } else {
                format!("{fam} {field} != {} ", set(except))
            };
            vec![format!("{fam} {field} {cidr} {exclude}{tail}")]
        }
        Peer::Node(ip) => vec![format!("{} {field} {ip} {tail}", family(ip))],
    }
}

fn dnat_rule(d: &Dnat) -> String {
    let fam = family(&d.address);
    let target = match d.endpoints.as_slice() {
        [one] => match one.ip {
            IpAddr::V4(ip) => format!("{ip}:{}", one.port),
            IpAddr::V6(ip) => format!("[{ip}]:{}", one.port),
        },
        many => {
            let entries: Vec<String> = many
                .iter()
                .enumerate()
                .map(|(i, e)| format!("{i} : {} . {}", e.ip, e.port))
                .collect();
            format!(
                "numgen random mod {} map {{ {} }}",
                many.len(),
                entries.join(", ")
            )
        }
    };
    let what = match d.exposure {
        Exposure::ClusterIp => d.service.clone(),
        Exposure::NodePort => format!("{} nodePort", d.service),
        Exposure::LoadBalancer => format!("{} loadBalancer", d.service),
    };
    format!(
        "{fam} daddr {} {} dport {} dnat {fam} to {target} {}",
        d.address,
        d.protocol.lower(),
        d.port,
        comment(&what)
    )
}

fn hairpin_rule(h: &Hairpin) -> String {
    let fam = family(&h.address);
    let pair = match h.endpoints.as_slice() {
        [one] => format!("{fam} saddr {one} {fam} daddr {one}"),
        many => {
            let pairs: Vec<String> = many.iter().map(|ip| format!("{ip} . {ip}")).collect();
            format!("{fam} saddr . {fam} daddr {{ {} }}", pairs.join(", "))
        }
    };
    format!(
        "ct original {fam} daddr {} {pair} snat {fam} to {} {}",
        h.address,
        h.address,
        comment(&format!("hairpin {}", h.service))
    )
}

/// `ip saddr vmap { a : jump c, ... }`, one line per address family present.
fn dispatch(chains: &[PodChain], field: &str) -> Vec<String> {
    by_family(chains.iter(), |c| c.ip.is_ipv4())
        .iter()
        .map(|cs| {
            let entries: Vec<String> = cs
                .iter()
                .map(|c| format!("{} : jump {}", c.ip, c.name))
                .collect();
            format!(
                "{} {field} vmap {{ {} }}",
                family(&cs[0].ip),
                entries.join(", ")
            )
        })
        .collect()
}

struct Out(String);

impl Out {
    fn line(&mut self, indent: usize, text: &str) {
        for _ in 0..indent {
            self.0.push('\t');
        }
        self.0.push_str(text);
        self.0.push('\n');
    }

    fn chain(&mut self, name: &str, head: Option<&str>, rules: &[String]) {
        self.line(1, &format!("chain {name} {{"));
        if let Some(h) = head {
            self.line(2, h);
        }
        for r in rules {
            self.line(2, r);
        }
        self.line(1, "}");
    }
}

impl Ruleset {
    /// The nft batch: create-if-missing, delete, recreate, so loading it replaces the table
    /// atomically whether or not it existed.
    pub fn render(&self) -> String {
        let t = &self.table;
        let mut o = Out(String::new());
        o.line(0, "# netassay sandbox ruleset (generated)");
        for n in &self.notes {
            let clean: String = n
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            o.line(0, &format!("# note: {clean}"));
        }
        o.line(0, &format!("table inet {t} {{}}"));
        o.line(0, &format!("delete table inet {t}"));
        o.line(0, &format!("table inet {t} {{"));

        let dnat: Vec<String> = self.dnat.iter().map(dnat_rule).collect();
        o.chain(
            "nat_prerouting",
            Some("type nat hook prerouting priority dstnat; policy accept;"),
            &dnat,
        );
        let hairpin: Vec<String> = self.hairpin.iter().map(hairpin_rule).collect();
        o.chain(
            "nat_postrouting",
            Some("type nat hook postrouting priority srcnat; policy accept;"),
            &hairpin,
        );
        // Before `forward`, so a dead ClusterIP port is rejected whatever the policies say.
        let reject: Vec<String> = by_family(self.cluster_ips.iter().copied(), IpAddr::is_ipv4)
            .iter()
            .map(|ips| {
                format!(
                    "{} daddr {} reject {}",
                    family(&ips[0]),
                    set(ips),
                    comment("ClusterIP port without endpoints")
                )
            })
            .collect();
        o.chain(
            "services",
            Some("type filter hook forward priority -10; policy accept;"),
            &reject,
        );

        if let Some(f) = &self.filter {
            let mut rules = vec![
                "ct state established,related accept".to_string(),
                "ct state invalid drop".to_string(),
            ];
            if f.flaky {
                rules.push(format!(
                    "ct state new numgen random mod 100 < 2 drop {}",
                    comment("fault: flaky")
                ));
            }
            if !f.unfiltered.is_empty() {
                let protos: Vec<&str> = f.unfiltered.iter().map(|p| p.lower()).collect();
                rules.push(format!(
                    "meta l4proto {} accept {}",
                    set(&protos),
                    comment("fault: tcp-only")
                ));
            }
            rules.extend(dispatch(&f.egress, "saddr"));
            rules.extend(dispatch(&f.ingress, "daddr"));
            o.chain(
                "forward",
                Some("type filter hook forward priority filter; policy accept;"),
                &rules,
            );
            for (chains, field) in [(&f.egress, "daddr"), (&f.ingress, "saddr")] {
                for c in chains {
                    let mut rules = vec![comment(&c.pod)];
                    rules.extend(c.denies.iter().flat_map(|a| allow_rules(a, field, "drop")));
                    rules.extend(
                        c.allows
                            .iter()
                            .flat_map(|a| allow_rules(a, field, "return")),
                    );
                    rules.push(
                        match c.otherwise {
                            Otherwise::Drop => "drop",
                            Otherwise::Accept => "return",
                        }
                        .to_string(),
                    );
                    o.chain(&c.name, None, &rules);
                }
            }
        }
        o.line(0, "}");
        o.0
    }
}
