//! Table tests for pool validation and property-style tests for `next_free`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn range_pool() -> RawIpPool {
    RawIpPool {
        name: "lab".into(),
        range: Some(RawRange {
            start: "10.0.0.10".into(),
            end: "10.0.0.20".into(),
        }),
        prefix: Some(24),
        gateway: Some("10.0.0.1".into()),
        name_servers: vec!["10.0.0.53".into()],
        ..RawIpPool::default()
    }
}

fn subnet_pool(subnet: &str, gateway: &str) -> RawIpPool {
    RawIpPool {
        name: "net".into(),
        subnet: Some(subnet.into()),
        gateway: Some(gateway.into()),
        name_servers: vec!["8.8.8.8".into()],
        ..RawIpPool::default()
    }
}

#[test]
fn valid_pools() {
    let pool = range_pool().validate().unwrap();
    assert_eq!(pool.prefix(), 24);
    assert_eq!(pool.network().to_string(), "10.0.0.0/24");
    assert_eq!(pool.capacity(), 11);

    let pool = subnet_pool("10.0.0.0/29", "10.0.0.1").validate().unwrap();
    // .0 network, .7 broadcast, .1 gateway: .2-.6 remain.
    assert_eq!(pool.capacity(), 5);

    // A /26 slice of a /18 network: first and last of the slice are usable.
    let mut raw = subnet_pool("10.10.183.64/26", "10.10.128.1");
    raw.prefix = Some(18);
    let pool = raw.validate().unwrap();
    assert_eq!(pool.capacity(), 64);
    assert_eq!(next_free(&pool, &BTreeSet::new()), Some(ip("10.10.183.64")));

    let raw = RawIpPool {
        name: "v6".into(),
        range: Some(RawRange {
            start: "2001:db8::10".into(),
            end: "2001:db8::1f".into(),
        }),
        prefix: Some(64),
        gateway: Some("2001:db8::1".into()),
        name_servers: vec!["2001:db8::53".into()],
        search_domains: vec!["lab.example.com".into()],
        exclude: vec!["2001:db8::10-2001:db8::11".into()],
        ..RawIpPool::default()
    };
    let pool = raw.validate().unwrap();
    assert_eq!(pool.capacity(), 14);
    assert_eq!(next_free(&pool, &BTreeSet::new()), Some(ip("2001:db8::12")));
}

#[test]
fn validation_errors_name_the_field() {
    type Edit = fn(&mut RawIpPool);
    let cases: &[(&str, Edit, &str)] = &[
        ("missing name", |p| p.name.clear(), "name: is required"),
        (
            "bad name",
            |p| p.name = "-x y".into(),
            "name: `-x y` must start with a letter or digit",
        ),
        (
            "neither",
            |p| p.range = None,
            "range: one of `range` (start and end) or `subnet` (a CIDR) is required",
        ),
        (
            "both",
            |p| p.subnet = Some("10.0.0.0/24".into()),
            "subnet: set either `range` or `subnet`, not both",
        ),
        (
            "bad start",
            |p| p.range.as_mut().unwrap().start = "10.0.0".into(),
            "range.start: `10.0.0` is not an IP address",
        ),
        (
            "backwards",
            |p| p.range.as_mut().unwrap().end = "10.0.0.5".into(),
            "range.end: 10.0.0.5 comes before 10.0.0.10",
        ),
        (
            "mixed",
            |p| p.range.as_mut().unwrap().end = "::1".into(),
            "range.end: 10.0.0.10 and ::1 are not the same address family",
        ),
        (
            "range beyond prefix",
            |p| p.range.as_mut().unwrap().end = "10.0.1.5".into(),
            "range.end: 10.0.1.5 is outside subnet 10.0.0.0/24 (range.start with prefix /24)",
        ),
        (
            "no prefix",
            |p| p.prefix = None,
            "prefix: is required with `range` (e.g. `prefix: 24`)",
        ),
        (
            "prefix too long",
            |p| p.prefix = Some(33),
            "prefix: prefix /33 is longer than /32",
        ),
        ("no gateway", |p| p.gateway = None, "gateway: is required"),
        (
            "gateway outside",
            |p| p.gateway = Some("10.0.1.1".into()),
            "gateway: 10.0.1.1 is outside subnet 10.0.0.0/24",
        ),
        (
            "gateway network",
            |p| p.gateway = Some("10.0.0.0".into()),
            "gateway: 10.0.0.0 is the network address of 10.0.0.0/24",
        ),
        (
            "gateway broadcast",
            |p| p.gateway = Some("10.0.0.255".into()),
            "gateway: 10.0.0.255 is the broadcast address",
        ),
        (
            "no dns",
            |p| p.name_servers.clear(),
            "nameServers: at least one name server is required",
        ),
        (
            "bad dns",
            |p| p.name_servers.push("dns.example".into()),
            "nameServers[1]: `dns.example` is not an IP address",
        ),
        (
            "bad domain",
            |p| p.search_domains = vec!["ok.example".into(), "bad_domain".into()],
            "searchDomains[1]: `bad_domain` is not a valid DNS domain",
        ),
        (
            "bad exclude",
            |p| p.exclude = vec!["10.0.0.300".into()],
            "exclude[0]: `10.0.0.300` is not an IP address",
        ),
        (
            "exclude outside",
            |p| p.exclude = vec!["10.0.0.100".into()],
            "exclude[0]: 10.0.0.100 is outside the pool's addresses 10.0.0.10-10.0.0.20",
        ),
        (
            "all excluded",
            |p| p.exclude = vec!["10.0.0.0/24".into()],
            "range: 10.0.0.10-10.0.0.20 has no usable address",
        ),
    ];
    for (case, edit, expected) in cases {
        let mut raw = range_pool();
        edit(&mut raw);
        let error = raw.validate().expect_err(case);
        let rendered: Vec<String> = error.problems().iter().map(ToString::to_string).collect();
        assert!(
            rendered.iter().any(|problem| problem.starts_with(expected)),
            "{case}: expected a problem starting with {expected:?}, got {rendered:?}"
        );
    }
}

#[test]
fn subnet_errors() {
    let cases = [
        (
            "10.0.0.1/24",
            "10.0.0.1",
            "subnet: `10.0.0.1/24` has host bits set; did you mean `10.0.0.0/24`?",
        ),
        (
            "10.0.0.0/24",
            "10.0.1.1",
            "gateway: 10.0.1.1 is outside subnet 10.0.0.0/24",
        ),
        ("10.0.0.0/30", "10.0.0.1", ""),
        ("10.0.0.0/30", "10.0.0.2", ""),
    ];
    for (subnet, gateway, expected) in cases {
        let result = subnet_pool(subnet, gateway).validate();
        match result {
            Ok(_) => assert!(
                expected.is_empty(),
                "{subnet} {gateway}: expected {expected}"
            ),
            Err(error) => assert_eq!(error.to_string(), format!("invalid IP pool: {expected}")),
        }
    }
    let mut raw = subnet_pool("10.0.0.0/24", "10.0.0.1");
    raw.prefix = Some(25);
    assert_eq!(
        raw.validate().unwrap_err().problems()[0].to_string(),
        "prefix: /25 is longer than subnet 10.0.0.0/24, which would span several networks"
    );
}

#[test]
fn all_problems_are_reported_together() {
    let raw = RawIpPool {
        name: "x".into(),
        ..RawIpPool::default()
    };
    let error = raw.validate().unwrap_err();
    let fields: Vec<&str> = error.problems().iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["range", "gateway", "nameServers"]);
    assert!(error
        .to_string()
        .starts_with("invalid IP pool: 3 problems\n  range: "));
}

#[test]
fn list_validation_prefixes_fields_and_checks_overlap() {
    let yaml = r#"
pools:
  - name: a
    range: { start: 10.0.0.10, end: 10.0.0.20 }
    prefix: 24
    gateway: 10.0.0.1
    nameServers: [10.0.0.53]
  - name: b
    subnet: 10.0.0.16/28
    prefix: 24
    gateway: 10.0.0.1
    nameServers: [10.0.0.53]
  - name: c
    subnet: 10.0.0.0/24
    gateway: 10.0.1.1
    nameServers: [10.0.0.53]
  - name: a
    range: { start: 10.0.5.10, end: 10.0.5.20 }
    prefix: 24
    gateway: 10.0.5.1
    nameServers: [10.0.0.53]
"#;
    let raws = parse_pools_yaml(yaml).unwrap();
    assert_eq!(raws.len(), 4);
    let error = validate_pools(&raws, false).unwrap_err();
    let rendered: Vec<String> = error.problems().iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        [
            "pools[2].gateway: 10.0.1.1 is outside subnet 10.0.0.0/24",
            "pools[1].subnet: 10.0.0.16-10.0.0.20 also belongs to pools[0] `a`",
            "pools[3].name: `a` is already used by pools[0]",
        ]
    );
    let error = validate_pools(&raws, true).unwrap_err();
    assert_eq!(error.problems().len(), 2);
}

#[test]
fn yaml_shapes_and_syntax_errors() {
    let single = "name: a\nsubnet: 10.0.0.0/24\ngateway: 10.0.0.1\nnameServers: [1.1.1.1]\nrestrictToCluster: true\n";
    let pools = parse_pools_yaml(single).unwrap();
    assert!(pools[0].restrict_to_cluster);
    let list = format!("- {}", single.replace('\n', "\n  "));
    assert_eq!(parse_pools_yaml(&list).unwrap().len(), 1);

    let error = parse_pools_yaml("pools:\n  - name: a\n    gatway: 10.0.0.1\n").unwrap_err();
    let cause = std::error::Error::source(&error).unwrap().to_string();
    assert!(
        cause.contains("pools[0]") && cause.contains("unknown field `gatway`"),
        "{cause}"
    );
}

#[test]
fn serde_round_trip_runs_validation() {
    let pool = range_pool().validate().unwrap();
    let json = serde_yaml::to_string(&pool).unwrap();
    let back: IpPool = serde_yaml::from_str(&json).unwrap();
    assert_eq!(back, pool);
    let broken = json.replace("gateway: 10.0.0.1", "gateway: 10.9.9.9");
    let error = serde_yaml::from_str::<IpPool>(&broken).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("gateway: 10.9.9.9 is outside subnet 10.0.0.0/24"),
        "{error}"
    );
}

#[test]
fn next_free_is_lowest_first_and_skips_reserved() {
    let mut raw = subnet_pool("10.0.0.0/29", "10.0.0.2");
    raw.exclude = vec!["10.0.0.4".into()];
    let pool = raw.validate().unwrap();
    let mut used = BTreeSet::new();
    let mut order = Vec::new();
    while let Some(address) = next_free(&pool, &used) {
        used.insert(address);
        order.push(address.to_string());
    }
    assert_eq!(order, ["10.0.0.1", "10.0.0.3", "10.0.0.5", "10.0.0.6"]);
    assert_eq!(pool.capacity(), 4);
    // A released address in the middle is reused first.
    used.remove(&ip("10.0.0.3"));
    assert_eq!(next_free(&pool, &used), Some(ip("10.0.0.3")));
}

#[test]
fn next_free_ignores_addresses_of_other_pools_and_families() {
    let pool = range_pool().validate().unwrap();
    let used: BTreeSet<IpAddr> = ["10.0.0.9", "10.0.0.21", "::", "2001:db8::1"]
        .iter()
        .map(|a| ip(a))
        .collect();
    assert_eq!(next_free(&pool, &used), Some(ip("10.0.0.10")));
}

#[test]
fn slash_31_and_32_have_no_network_or_broadcast() {
    let mut raw = subnet_pool("10.0.0.0/31", "10.0.0.0");
    raw.prefix = None;
    let pool = raw.validate().unwrap();
    assert_eq!(next_free(&pool, &BTreeSet::new()), Some(ip("10.0.0.1")));
    assert_eq!(pool.capacity(), 1);
}

#[test]
fn overlap_between_pools() {
    let a = range_pool().validate().unwrap();
    let b = subnet_pool("10.0.0.16/28", "10.0.0.17").validate().unwrap();
    let c = subnet_pool("10.0.1.0/24", "10.0.1.1").validate().unwrap();
    assert_eq!(overlap(&a, &b).unwrap().to_string(), "10.0.0.16-10.0.0.20");
    assert!(overlap(&a, &c).is_none());
    let error = check_overlap(&b, [&c, &a]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "pool `net` overlaps pool `lab` at 10.0.0.16-10.0.0.20 (pass `--allow-overlap` if this is intended)"
    );
}

/// Small deterministic generator so property tests are reproducible
/// without pulling in a randomness crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next() % bound
        }
    }
}

/// Random pools (v4 and v6, range and subnet, random gateway and
/// exclusions) and random used sets: `next_free` never returns a reserved
/// or used address, always returns the lowest allowed one, and filling a
/// pool yields exactly `capacity()` distinct addresses.
#[test]
fn next_free_properties() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for case in 0..400 {
        let v6 = case % 3 == 0;
        let prefix = if v6 {
            120 + rng.below(8) as u8
        } else {
            22 + rng.below(9) as u8
        };
        let width = if v6 { 128 } else { 32 };
        let base: IpAddr = if v6 {
            ip("2001:db8::")
        } else {
            ip("10.20.0.0")
        };
        let size = 1u128 << (width - prefix);
        let at =
            |offset: u128| super::address::from_bits(base, super::address::to_bits(base) + offset);
        let mut raw = RawIpPool {
            name: format!("p{case}"),
            gateway: Some(at(1 + u128::from(rng.below((size - 2) as u64))).to_string()),
            name_servers: vec!["10.0.0.53".into()],
            ..RawIpPool::default()
        };
        if rng.below(2) == 0 {
            raw.subnet = Some(format!("{base}/{prefix}"));
        } else {
            let start = u128::from(rng.below(size as u64));
            let end = start + u128::from(rng.below((size - start) as u64));
            raw.range = Some(RawRange {
                start: at(start).to_string(),
                end: at(end).to_string(),
            });
            raw.prefix = Some(prefix);
        }
        let span = raw
            .subnet
            .as_ref()
            .map(|_| (0, size - 1))
            .unwrap_or_else(|| {
                let r = raw.range.as_ref().unwrap();
                let offset =
                    |t: &str| super::address::to_bits(ip(t)) - super::address::to_bits(base);
                (offset(&r.start), offset(&r.end))
            });
        for _ in 0..rng.below(3) {
            let first = span.0 + u128::from(rng.below((span.1 - span.0 + 1) as u64));
            let last = (first + u128::from(rng.below(4))).min(span.1);
            raw.exclude.push(format!("{}-{}", at(first), at(last)));
        }
        let Ok(pool) = raw.validate() else { continue };

        let mut used = BTreeSet::new();
        for _ in 0..rng.below(20) {
            used.insert(at(u128::from(rng.below(size as u64))));
        }
        let reserved = |a: IpAddr| {
            a == pool.gateway()
                || (pool.prefix() + 2 <= width && a == pool.network().network())
                || (!v6 && pool.prefix() <= 30 && a == pool.network().last())
                || pool.exclude().iter().any(|e| e.contains(a))
        };
        let allowed = |a: IpAddr, used: &BTreeSet<IpAddr>| {
            pool.addresses().range().contains(a) && !reserved(a) && !used.contains(&a)
        };
        // Lowest allowed address, by brute force.
        let expected = (span.0..=span.1).map(at).find(|a| allowed(*a, &used));
        assert_eq!(next_free(&pool, &used), expected, "case {case}: {raw:?}");
        // The same from a random starting point.
        let from = u128::from(rng.below(size as u64));
        let expected = (span.0.max(from)..=span.1)
            .map(at)
            .find(|a| allowed(*a, &used));
        assert_eq!(
            next_free_from(&pool, &used, at(from)),
            expected,
            "case {case} from {}: {raw:?}",
            at(from)
        );

        // Filling the pool hands out exactly `capacity` distinct addresses.
        let mut fresh = BTreeSet::new();
        while let Some(address) = next_free(&pool, &fresh) {
            assert!(
                allowed(address, &fresh),
                "case {case}: {address} not allowed"
            );
            assert!(pool.is_allocatable(address));
            fresh.insert(address);
        }
        assert_eq!(fresh.len() as u128, pool.capacity(), "case {case}: {raw:?}");
    }
}

#[test]
fn lease_carries_pool_settings() {
    let pool = range_pool().validate().unwrap();
    let lease = allocate(&pool, &BTreeSet::new(), "prod-a", "prod-a-cp-0").unwrap();
    assert_eq!(lease.address, ip("10.0.0.10"));
    assert_eq!(lease.prefix, 24);
    assert_eq!(lease.gateway, ip("10.0.0.1"));
    assert_eq!(lease.name_servers, [ip("10.0.0.53")]);
    assert_eq!(
        (lease.cluster.as_str(), lease.node.as_str()),
        ("prod-a", "prod-a-cp-0")
    );
}
