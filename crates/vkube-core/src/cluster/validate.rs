//! Validation: [`RawClusterSpec::validate`] turns the YAML form into a
//! [`ClusterSpec`], reporting every problem at once with its field path
//! (`spec.nodePools[1].placementDomains[0]: unknown domain "az3"`).
//!
//! Checks only what needs no vCenter or store: inventory paths are resolved
//! by `vkube-vsphere` in one pass, pools by [`ClusterSpec::check_pools`].

use std::collections::{BTreeMap, BTreeSet};

use super::error::{Error, Problems};
use super::health_check::validate_health_check;
use super::raw::*;
use super::spec::*;
use super::values::{
    check_label, ClusterName, CredentialsName, DomainName, KubernetesVersion, NodePoolName,
};
use crate::addons::Cni;
use crate::ipam::{parse_address, Cidr, PoolName};

// kubeadm's preflight checks refuse control-plane nodes with fewer than 2
// CPUs or less than 1700 MB of memory; round up to what VMs are sized in.
const MIN_CONTROL_PLANE_CPU: u32 = 2;
const MIN_CONTROL_PLANE_MEMORY_MIB: u32 = 2048;
const MIN_WORKER_MEMORY_MIB: u32 = 1024;
const MIN_DISK_GIB: u32 = 10;

impl RawClusterSpec {
    /// Parses a cluster document; only syntax is checked (unknown fields
    /// are refused with their path). Call [`validate`](Self::validate) next.
    pub fn from_yaml(text: &str) -> Result<RawClusterSpec, Error> {
        serde_yaml::from_str(text).map_err(|source| Error::Yaml { source })
    }

    /// Checks everything that can be checked without vCenter or the store
    /// and returns every problem at once, each naming its field
    /// (`spec.nodePools[1].placementDomains[0]: unknown domain "az3"`).
    pub fn validate(&self) -> Result<ClusterSpec, Error> {
        let mut problems = Problems::default();
        let p = &mut problems;
        if self.api_version != API_VERSION {
            p.push(
                "apiVersion",
                format!("must be `{API_VERSION}`, not `{}`", self.api_version),
            );
        }
        if self.kind != KIND {
            p.push("kind", format!("must be `{KIND}`, not `{}`", self.kind));
        }
        let name = ClusterName::new(&self.metadata.name)
            .map_err(|e| p.push("metadata.name", e))
            .ok();
        let spec = &self.spec;
        let kubernetes_version = spec
            .kubernetes_version
            .parse::<KubernetesVersion>()
            .map_err(|e| p.push("spec.kubernetesVersion", e))
            .ok();
        let datacenter = required_path(p, "spec.datacenter", &spec.datacenter);
        let folder = required_path(p, "spec.folder", &spec.folder);
        let template = required_path(p, "spec.template", &spec.template);
        let clone_mode = choice(
            p,
            "spec.cloneMode",
            spec.clone_mode.as_deref(),
            &[("full", CloneMode::Full), ("linked", CloneMode::Linked)],
        );
        let os_family = choice(
            p,
            "spec.osFamily",
            spec.os_family.as_deref(),
            &[
                ("ubuntu", OsFamily::Ubuntu),
                ("rocky", OsFamily::Rocky),
                ("flatcar", OsFamily::Flatcar),
            ],
        );
        let ip_allocation = choice(
            p,
            "spec.ipAllocation",
            spec.ip_allocation.as_deref(),
            &[
                ("dhcp", IpAllocation::Dhcp),
                ("static", IpAllocation::Static),
            ],
        );

        super::bounds::check(p, spec);
        let domains = validate_domains(p, &spec.placement_domains);
        // References are checked against every well-formed domain name, so
        // one bad field in a domain does not make each reference fail too.
        let domain_names: BTreeSet<&str> = spec
            .placement_domains
            .iter()
            .map(|d| d.name.trim())
            .filter(|name| DomainName::new(name).is_ok())
            .collect();
        let known = |name: &str| domain_names.contains(name);

        let control_plane = validate_control_plane(p, &spec.control_plane, &known);
        let node_pools = validate_node_pools(p, &spec.node_pools, &known);

        // VM names `<cluster>-<pool>-<index>` must stay one DNS label (the
        // control plane's `cp` always fits next to a 40-character name).
        if let Some(name) = &name {
            for (index, pool) in spec.node_pools.iter().enumerate() {
                let pool = pool.name.trim();
                let total = name.as_str().len() + 1 + pool.len() + 1 + INDEX_DIGITS;
                if total > 63 {
                    p.push(
                        format!("spec.nodePools[{index}].name"),
                        format!("VM names `{name}-{pool}-NNNN` would be {total} characters, over the 63 a hostname allows: shorten the cluster or pool name"),
                    );
                }
            }
        }

        // Linked clones share the template's disk: its size is fixed.
        if clone_mode == Some(CloneMode::Linked) {
            if spec.control_plane.disk_gib.is_some() {
                p.push("spec.controlPlane.diskGiB", "must be unset with `cloneMode: linked`: a linked clone keeps the template's disk size (use `cloneMode: full` to resize)");
            }
            for (index, pool) in spec.node_pools.iter().enumerate() {
                if pool.disk_gib.is_some() {
                    p.push(format!("spec.nodePools[{index}].diskGiB"), "must be unset with `cloneMode: linked`: a linked clone keeps the template's disk size (use `cloneMode: full` to resize)");
                }
            }
        }

        // Static addresses need a pool on every domain a node lands in.
        if ip_allocation == Some(IpAllocation::Static) {
            let mut used: BTreeSet<&str> = BTreeSet::new();
            used.insert(spec.control_plane.placement_domain.as_str());
            for pool in &spec.node_pools {
                if pool.replicas > 0 {
                    used.extend(pool.placement_domains.iter().map(String::as_str));
                }
            }
            for (index, domain) in spec.placement_domains.iter().enumerate() {
                if used.contains(domain.name.as_str()) && domain.ip_pool.is_none() {
                    p.push(
                        format!("spec.placementDomains[{index}].ipPool"),
                        format!("is required with `ipAllocation: static`: nodes in domain `{}` need addresses", domain.name),
                    );
                }
            }
        }

        let (pod_cidr, service_cidr) = validate_network(p, spec.network.as_ref());
        let cni = choice(
            p,
            "spec.network.cni",
            spec.network.as_ref().and_then(|n| n.cni.as_deref()),
            &[
                ("cilium", Cni::Cilium),
                ("calico", Cni::Calico),
                ("none", Cni::None),
            ],
        );
        if let Some(pod) = pod_cidr {
            let nodes = u64::from(spec.control_plane.replicas)
                + spec
                    .node_pools
                    .iter()
                    .map(|pool| u64::from(pool.replicas))
                    .sum::<u64>();
            check_pod_cidr_size(p, pod, nodes);
        }
        if let Some(service) = service_cidr {
            check_service_cidr_size(p, service);
        }
        if let (Some(pod), Some(service)) = (pod_cidr, service_cidr) {
            if pod.network().is_ipv4() != service.network().is_ipv4() {
                p.push(
                    "spec.network.serviceCidr",
                    format!("{service} and the pod network {pod} are of different address families; dual-stack is not supported"),
                );
            }
            if pod.range().intersection(&service.range()).is_some() {
                p.push(
                    "spec.network.serviceCidr",
                    format!("{service} overlaps the pod network {pod}"),
                );
            }
            if let Some(ControlPlane {
                vip: Vip::Address(vip),
                ..
            }) = &control_plane
            {
                for (field, cidr) in [("podCidr", pod), ("serviceCidr", service)] {
                    if cidr.contains(*vip) {
                        p.push(
                            "spec.controlPlane.vip.address",
                            format!("{vip} is inside spec.network.{field} {cidr}"),
                        );
                    }
                }
            }
        }

        for (index, key) in spec.ssh_authorized_keys.iter().enumerate() {
            if let Err(e) = check_ssh_key(key) {
                p.push(format!("spec.sshAuthorizedKeys[{index}]"), e);
            }
        }
        for (index, server) in spec.ntp_servers.iter().enumerate() {
            if let Err(e) = check_host(server) {
                p.push(format!("spec.ntpServers[{index}]"), e);
            }
        }
        let proxy = spec.proxy.as_ref().map(|raw| validate_proxy(p, raw));
        let registry = spec
            .registry
            .as_ref()
            .and_then(|raw| validate_registry(p, raw));
        let cloud_credentials = if spec.cloud_credentials.trim().is_empty() {
            p.push(
                "spec.cloudCredentials",
                "is required: the name of the cluster's own vCenter credentials the cloud provider (CPI) and CSI driver run as; store them with `vkube cluster credentials set NAME --username USER --password-file FILE`",
            );
            None
        } else {
            CredentialsName::new(spec.cloud_credentials.trim())
                .map_err(|e| p.push("spec.cloudCredentials", e))
                .ok()
        };
        let default_storage = validate_storage(
            p,
            spec.storage.as_ref(),
            &spec.placement_domains,
            &spec.control_plane.placement_domain,
        );

        if !problems.is_empty() {
            return Err(Error::Invalid {
                problems: problems.list,
            });
        }
        let (
            Some(name),
            Some(kubernetes_version),
            Some(datacenter),
            Some(folder),
            Some(template),
            Some(clone_mode),
            Some(os_family),
            Some(ip_allocation),
            Some(control_plane),
            Some(pod_cidr),
            Some(service_cidr),
            Some(cni),
            Some(cloud_credentials),
        ) = (
            name,
            kubernetes_version,
            datacenter,
            folder,
            template,
            clone_mode,
            os_family,
            ip_allocation,
            control_plane,
            pod_cidr,
            service_cidr,
            cni,
            cloud_credentials,
        )
        else {
            unreachable!("a missing part always records a problem")
        };
        Ok(ClusterSpec {
            name,
            kubernetes_version,
            datacenter,
            folder,
            template,
            clone_mode,
            os_family,
            ip_allocation,
            placement_domains: domains,
            control_plane,
            node_pools,
            pod_cidr,
            service_cidr,
            ssh_authorized_keys: spec
                .ssh_authorized_keys
                .iter()
                .map(|k| k.trim().to_owned())
                .collect(),
            ntp_servers: spec
                .ntp_servers
                .iter()
                .map(|s| s.trim().to_owned())
                .collect(),
            proxy,
            disable_tunnel_offload: spec.disable_tunnel_offload,
            cni,
            registry,
            cloud_credentials,
            default_storage,
        })
    }
}

fn required_path(p: &mut Problems, field: &str, value: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        p.push(field, "is required");
        return None;
    }
    if value.contains(['\n', '\r']) {
        p.push(field, "must be a single line");
        return None;
    }
    let trimmed = value.trim_end_matches('/');
    Some(if trimmed.is_empty() { "/" } else { trimmed }.to_owned())
}

fn choice<T: Copy>(
    p: &mut Problems,
    field: &str,
    value: Option<&str>,
    options: &[(&str, T)],
) -> Option<T> {
    let value = value.map(str::trim).unwrap_or(options[0].0);
    match options.iter().find(|(name, _)| *name == value) {
        Some((_, choice)) => Some(*choice),
        None => {
            let names: Vec<String> = options.iter().map(|(n, _)| format!("`{n}`")).collect();
            p.push(
                field,
                format!("`{value}` is not one of {}", names.join(", ")),
            );
            None
        }
    }
}

fn validate_domains(p: &mut Problems, raws: &[RawPlacementDomain]) -> Vec<PlacementDomain> {
    if raws.is_empty() {
        p.push(
            "spec.placementDomains",
            "at least one placement domain is required",
        );
    }
    let mut domains = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, raw) in raws.iter().enumerate() {
        let at = |field: &str| format!("spec.placementDomains[{index}].{field}");
        let before = p.list.len();
        let name = DomainName::new(raw.name.trim())
            .map_err(|e| p.push(at("name"), e))
            .ok();
        if let Some(other) = seen.insert(raw.name.trim(), index) {
            p.push(
                at("name"),
                format!(
                    "`{}` is already used by spec.placementDomains[{other}]",
                    raw.name.trim()
                ),
            );
        }
        let compute_cluster = required_path(p, &at("computeCluster"), &raw.compute_cluster);
        let network = required_path(p, &at("network"), &raw.network);
        let resource_pool = match &raw.resource_pool {
            Some(path) => required_path(p, &at("resourcePool"), path),
            None => compute_cluster.as_ref().map(|c| format!("{c}/Resources")),
        };
        let storage = match (&raw.datastore, &raw.datastore_cluster) {
            (Some(_), Some(_)) => {
                p.push(
                    at("datastoreCluster"),
                    "set either `datastore` or `datastoreCluster`, not both",
                );
                None
            }
            (None, None) => {
                p.push(
                    at("datastore"),
                    "one of `datastore` or `datastoreCluster` is required",
                );
                None
            }
            (Some(path), None) => required_path(p, &at("datastore"), path).map(Storage::Datastore),
            (None, Some(path)) => {
                required_path(p, &at("datastoreCluster"), path).map(Storage::DatastoreCluster)
            }
        };
        let ip_pool = raw.ip_pool.as_ref().and_then(|pool| {
            PoolName::new(pool.trim())
                .map_err(|e| p.push(at("ipPool"), e))
                .ok()
        });
        if p.list.len() == before {
            if let (
                Some(name),
                Some(compute_cluster),
                Some(network),
                Some(resource_pool),
                Some(storage),
            ) = (name, compute_cluster, network, resource_pool, storage)
            {
                domains.push(PlacementDomain {
                    name,
                    compute_cluster,
                    resource_pool,
                    storage,
                    network,
                    ip_pool,
                });
            }
        }
    }
    domains
}

fn validate_control_plane(
    p: &mut Problems,
    raw: &RawControlPlane,
    known: &dyn Fn(&str) -> bool,
) -> Option<ControlPlane> {
    let before = p.list.len();
    if ![1, 3, 5].contains(&raw.replicas) {
        p.push(
            "spec.controlPlane.replicas",
            format!(
                "must be 1, 3 or 5 (etcd needs an odd quorum), not {}",
                raw.replicas
            ),
        );
    }
    let vip = match &raw.vip {
        None => {
            p.push(
                "spec.controlPlane.vip",
                "is required: `{address: IP}` or `{fromPool: POOL}`",
            );
            None
        }
        Some(RawVip {
            address: Some(_),
            from_pool: Some(_),
        }) => {
            p.push(
                "spec.controlPlane.vip",
                "set either `address` or `fromPool`, not both",
            );
            None
        }
        Some(RawVip {
            address: None,
            from_pool: None,
        }) => {
            p.push(
                "spec.controlPlane.vip",
                "one of `address` or `fromPool` is required",
            );
            None
        }
        Some(RawVip {
            address: Some(address),
            ..
        }) => parse_address(address)
            .map(Vip::Address)
            .map_err(|e| p.push("spec.controlPlane.vip.address", e))
            .ok(),
        Some(RawVip {
            from_pool: Some(pool),
            ..
        }) => PoolName::new(pool.trim())
            .map(Vip::FromPool)
            .map_err(|e| p.push("spec.controlPlane.vip.fromPool", e))
            .ok(),
    };
    check_size(
        p,
        "spec.controlPlane",
        raw.cpu,
        raw.memory_mib,
        raw.disk_gib,
        MIN_CONTROL_PLANE_CPU,
        MIN_CONTROL_PLANE_MEMORY_MIB,
    );
    let domain = raw.placement_domain.trim();
    let placement_domain = if domain.is_empty() {
        p.push(
            "spec.controlPlane.placementDomain",
            "is required (the control plane uses exactly one placement domain)",
        );
        None
    } else if !known(domain) {
        p.push(
            "spec.controlPlane.placementDomain",
            format!("unknown domain {domain:?}"),
        );
        None
    } else {
        DomainName::new(domain).ok()
    };
    let kube_vip_image = raw
        .kube_vip_image
        .as_deref()
        .map(str::trim)
        .unwrap_or(DEFAULT_KUBE_VIP_IMAGE);
    if kube_vip_image.is_empty() || kube_vip_image.contains(char::is_whitespace) {
        p.push(
            "spec.controlPlane.kubeVipImage",
            format!("`{kube_vip_image}` is not an image reference"),
        );
    }
    let health_check = raw
        .health_check
        .as_ref()
        .and_then(|raw| validate_health_check(p, "spec.controlPlane", raw));
    if p.list.len() != before {
        return None;
    }
    Some(ControlPlane {
        replicas: raw.replicas,
        vip: vip?,
        cpu: raw.cpu,
        memory_mib: raw.memory_mib,
        disk_gib: raw.disk_gib,
        placement_domain: placement_domain?,
        kube_vip_image: kube_vip_image.to_owned(),
        health_check,
    })
}

fn check_size(
    p: &mut Problems,
    at: &str,
    cpu: u32,
    memory_mib: u32,
    disk_gib: Option<u32>,
    min_cpu: u32,
    min_memory: u32,
) {
    if cpu < min_cpu {
        p.push(
            format!("{at}.cpu"),
            format!("must be at least {min_cpu}, not {cpu}"),
        );
    }
    if memory_mib < min_memory {
        p.push(
            format!("{at}.memoryMiB"),
            format!("must be at least {min_memory}, not {memory_mib}"),
        );
    }
    if let Some(disk) = disk_gib {
        if disk < MIN_DISK_GIB {
            p.push(
                format!("{at}.diskGiB"),
                format!("must be at least {MIN_DISK_GIB}, not {disk}"),
            );
        }
    }
}

fn validate_node_pools(
    p: &mut Problems,
    raws: &[RawNodePool],
    known: &dyn Fn(&str) -> bool,
) -> Vec<NodePool> {
    let mut pools = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, raw) in raws.iter().enumerate() {
        let at = format!("spec.nodePools[{index}]");
        let before = p.list.len();
        let name = raw.name.trim();
        let pool_name = NodePoolName::new(name)
            .map_err(|e| p.push(format!("{at}.name"), e))
            .ok();
        if name == CONTROL_PLANE_GROUP {
            p.push(
                format!("{at}.name"),
                format!("`{CONTROL_PLANE_GROUP}` is reserved for the control plane"),
            );
        }
        if let Some(other) = seen.insert(name, index) {
            p.push(
                format!("{at}.name"),
                format!("`{name}` is already used by spec.nodePools[{other}]"),
            );
        }
        check_size(
            p,
            &at,
            raw.cpu,
            raw.memory_mib,
            raw.disk_gib,
            1,
            MIN_WORKER_MEMORY_MIB,
        );
        if raw.placement_domains.is_empty() {
            p.push(
                format!("{at}.placementDomains"),
                "at least one placement domain is required",
            );
        }
        let mut domains = Vec::new();
        for (position, domain) in raw.placement_domains.iter().enumerate() {
            let domain = domain.trim();
            let field = format!("{at}.placementDomains[{position}]");
            if !known(domain) {
                p.push(field, format!("unknown domain {domain:?}"));
            } else if raw.placement_domains[..position]
                .iter()
                .any(|d| d.trim() == domain)
            {
                p.push(field, format!("domain {domain:?} is listed twice"));
            } else if let Ok(domain) = DomainName::new(domain) {
                domains.push(domain);
            }
        }
        for (key, value) in &raw.labels {
            if let Err(e) = check_label_key(key).and_then(|()| check_node_label_key(key)) {
                p.push(format!("{at}.labels[{key:?}]"), e);
            }
            if let Err(e) = check_label_value(value) {
                p.push(format!("{at}.labels[{key:?}]"), e);
            }
        }
        let mut taints = Vec::new();
        for (position, taint) in raw.taints.iter().enumerate() {
            let field = format!("{at}.taints[{position}]");
            if let Err(e) = check_label_key(&taint.key) {
                p.push(format!("{field}.key"), e);
            }
            if let Some(value) = &taint.value {
                if let Err(e) = check_label_value(value) {
                    p.push(format!("{field}.value"), e);
                }
            }
            let effect = match taint.effect.as_str() {
                "NoSchedule" => Some(TaintEffect::NoSchedule),
                "PreferNoSchedule" => Some(TaintEffect::PreferNoSchedule),
                "NoExecute" => Some(TaintEffect::NoExecute),
                other => {
                    p.push(
                        format!("{field}.effect"),
                        format!(
                            "`{other}` is not one of `NoSchedule`, `PreferNoSchedule`, `NoExecute`"
                        ),
                    );
                    None
                }
            };
            if let Some(effect) = effect {
                taints.push(Taint {
                    key: taint.key.clone(),
                    value: taint.value.clone(),
                    effect,
                });
            }
        }
        let health_check = raw
            .health_check
            .as_ref()
            .and_then(|raw| validate_health_check(p, &at, raw));
        if p.list.len() == before {
            if let Some(name) = pool_name {
                pools.push(NodePool {
                    name,
                    replicas: raw.replicas,
                    cpu: raw.cpu,
                    memory_mib: raw.memory_mib,
                    disk_gib: raw.disk_gib,
                    placement_domains: domains,
                    labels: raw.labels.clone(),
                    taints,
                    health_check,
                });
            }
        }
    }
    pools
}

/// A Kubernetes label key: `[prefix/]name`, prefix a DNS subdomain.
fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let valid = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix
                .split('.')
                .all(|label| check_label(label, 63).is_ok());
        if !valid {
            return Err(format!(
                "key `{key}` has an invalid prefix `{prefix}` (a lowercase DNS subdomain)"
            ));
        }
    }
    if name.is_empty() || check_label_value(name).is_err() {
        return Err(format!("key `{key}` must end in a name of 1 to 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit"));
    }
    Ok(())
}

/// Kubelets may only set a few labels under `kubernetes.io` and `k8s.io`
/// (the NodeRestriction admission plugin refuses the rest).
fn check_node_label_key(key: &str) -> Result<(), String> {
    let Some((prefix, _)) = key.rsplit_once('/') else {
        return Ok(());
    };
    let restricted = ["kubernetes.io", "k8s.io"]
        .iter()
        .any(|domain| prefix == *domain || prefix.ends_with(&format!(".{domain}")));
    let allowed_prefix = ["kubelet.kubernetes.io", "node.kubernetes.io"]
        .iter()
        .any(|domain| prefix == *domain || prefix.ends_with(&format!(".{domain}")));
    let allowed_key = [
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
    ]
    .contains(&key);
    if restricted && !allowed_prefix && !allowed_key {
        return Err(format!(
            "kubelets may not set `{key}` (NodeRestriction refuses labels under `kubernetes.io` and `k8s.io`): use `node.kubernetes.io/…` or your own prefix"
        ));
    }
    Ok(())
}

fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    let chars_ok = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let ends_ok = value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric());
    if value.len() > 63 || !chars_ok || !ends_ok {
        return Err(format!("value `{value}` must be at most 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit"));
    }
    Ok(())
}

fn validate_network(
    p: &mut Problems,
    raw: Option<&RawClusterNetwork>,
) -> (Option<Cidr>, Option<Cidr>) {
    let raw = raw.cloned().unwrap_or_default();
    let parse = |p: &mut Problems, field: &str, value: Option<&str>, default: &str| {
        value
            .unwrap_or(default)
            .parse::<Cidr>()
            .map_err(|e| p.push(format!("spec.network.{field}"), e))
            .ok()
    };
    let pod = parse(p, "podCidr", raw.pod_cidr.as_deref(), DEFAULT_POD_CIDR);
    let service = parse(
        p,
        "serviceCidr",
        raw.service_cidr.as_deref(),
        DEFAULT_SERVICE_CIDR,
    );
    (pod, service)
}

fn check_ssh_key(key: &str) -> Result<(), String> {
    let key = key.trim();
    let mut parts = key.split_whitespace();
    let kind = parts.next().unwrap_or_default();
    let known =
        kind.starts_with("ssh-") || kind.starts_with("ecdsa-sha2-") || kind.starts_with("sk-");
    if !known || parts.next().is_none() || key.contains(['\n', '\r']) {
        return Err("is not an OpenSSH public key line like `ssh-ed25519 AAAA… comment`".into());
    }
    Ok(())
}

fn check_host(host: &str) -> Result<(), String> {
    let host = host.trim();
    if host.is_empty()
        || host.len() > 253
        || host.contains(|c: char| c.is_whitespace() || c == ',' || c == '/')
    {
        return Err(format!("`{host}` is not a host name or address"));
    }
    Ok(())
}

fn validate_proxy(p: &mut Problems, raw: &RawProxy) -> Proxy {
    for (field, value) in [
        ("httpProxy", &raw.http_proxy),
        ("httpsProxy", &raw.https_proxy),
    ] {
        if let Some(url) = value {
            let valid = (url.starts_with("http://") || url.starts_with("https://"))
                && url.len() > "https://".len()
                && !url.contains(char::is_whitespace)
                && !url.contains(['"', '\'', '\\']);
            if !valid {
                p.push(
                    format!("spec.proxy.{field}"),
                    format!("`{url}` is not a proxy URL like `http://proxy.example.com:3128`"),
                );
            }
        }
    }
    if raw.http_proxy.is_none() && raw.https_proxy.is_none() {
        p.push(
            "spec.proxy",
            "set `httpProxy`, `httpsProxy` or both (or drop `proxy`)",
        );
    }
    for (index, entry) in raw.no_proxy.iter().enumerate() {
        if entry.trim().is_empty()
            || entry.contains(|c: char| c.is_whitespace() || matches!(c, ',' | '"' | '\'' | '\\'))
        {
            p.push(
                format!("spec.proxy.noProxy[{index}]"),
                format!("`{entry}` must be one host, domain or CIDR (no spaces or commas)"),
            );
        }
    }
    Proxy {
        http_proxy: raw.http_proxy.clone(),
        https_proxy: raw.https_proxy.clone(),
        no_proxy: raw.no_proxy.iter().map(|e| e.trim().to_owned()).collect(),
    }
}

/// The controller manager gives every node a /24 (IPv4) or /64 (IPv6) of
/// the pod network: it must hold one per node the spec asks for.
fn check_pod_cidr_size(p: &mut Problems, pod: Cidr, nodes: u64) {
    let (node_prefix, family) = match pod.network() {
        std::net::IpAddr::V4(_) => (24u8, "/24"),
        std::net::IpAddr::V6(_) => (64u8, "/64"),
    };
    if pod.prefix() > node_prefix {
        p.push(
            "spec.network.podCidr",
            format!("{pod} is smaller than the {family} each node gets from it"),
        );
        return;
    }
    let room = 1u128
        .checked_shl(u32::from(node_prefix - pod.prefix()))
        .unwrap_or(u128::MAX);
    if room < u128::from(nodes) {
        p.push(
            "spec.network.podCidr",
            format!(
                "{pod} has room for {room} nodes (a {family} each), but the spec asks for {nodes}"
            ),
        );
    }
}

/// kube-apiserver refuses service ranges over 2^20 addresses (`/12` for
/// IPv4, `/108` for IPv6).
fn check_service_cidr_size(p: &mut Problems, service: Cidr) {
    let (min_prefix, family) = match service.network() {
        std::net::IpAddr::V4(_) => (12u8, "/12"),
        std::net::IpAddr::V6(_) => (108u8, "/108"),
    };
    if service.prefix() < min_prefix {
        p.push(
            "spec.network.serviceCidr",
            format!("{service} is larger than the API server allows: use {family} or smaller"),
        );
    }
}

fn validate_registry(p: &mut Problems, raw: &RawRegistry) -> Option<Registry> {
    let before = p.list.len();
    let mirror = raw.mirror.trim().trim_end_matches('/');
    let parsed = check_mirror(mirror)
        .map_err(|e| p.push("spec.registry.mirror", e))
        .ok();
    let ca_bundle = raw.ca_bundle.as_ref().and_then(|pem| {
        check_pem_certificates(pem)
            .map(|()| pem.trim().to_owned() + "\n")
            .map_err(|e| p.push("spec.registry.caBundle", e))
            .ok()
    });
    if raw.insecure_skip_verify && ca_bundle.is_some() {
        p.push(
            "spec.registry.insecureSkipVerify",
            "set either `caBundle` (verify the mirror with it) or `insecureSkipVerify`, not both",
        );
    }
    let (host, path) = parsed?;
    (p.list.len() == before).then_some(Registry {
        host,
        path,
        ca_bundle,
        insecure_skip_verify: raw.insecure_skip_verify,
    })
}

/// `host[:port][/path]`, in the image reference grammar: the host must
/// look like one (a `.` or `:` or `localhost`, else container runtimes read
/// it as a Docker Hub namespace), path components are lowercase.
fn check_mirror(mirror: &str) -> Result<(String, Option<String>), String> {
    let example = "like `harbor.example.com/k8s` (host[:port][/path], no scheme)";
    if mirror.is_empty() {
        return Err(format!("is required: a registry {example}"));
    }
    if let Some((scheme, _)) = mirror.split_once("://") {
        return Err(format!(
            "`{mirror}` has a scheme `{scheme}://`: drop it (vkube pulls over HTTPS) and write it {example}"
        ));
    }
    let (host, path) = match mirror.split_once('/') {
        Some((host, path)) => (host, Some(path)),
        None => (mirror, None),
    };
    let bad_host = || format!("`{mirror}` does not start with a registry host {example}");
    // `[fd00::1]:5000`, `10.0.0.9:5000`, `harbor.example.com`.
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => {
            let (address, after) = rest.split_once(']').ok_or_else(bad_host)?;
            address
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| bad_host())?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(bad_host)?),
            };
            (None, port)
        }
        None => match host.split_once(':') {
            Some((name, port)) => (Some(name), Some(port)),
            None => (Some(host), None),
        },
    };
    if let Some(name) = name {
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !valid {
            return Err(bad_host());
        }
        if !name.contains('.') && port.is_none() && name != "localhost" {
            return Err(format!(
                "`{mirror}` starts with `{name}`, which image references read as a Docker Hub namespace, not a host: use a fully qualified name or add the port ({example})"
            ));
        }
    }
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |port| port == 0) {
            return Err(format!("`{mirror}` has an invalid port `{port}`"));
        }
    }
    let path = match path {
        None | Some("") => None,
        Some(path) => {
            let component_ok = |part: &str| {
                part.split(['.', '_', '-']).all(|piece| {
                    !piece.is_empty()
                        && piece
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                })
            };
            if !path.split('/').all(component_ok) {
                return Err(format!(
                    "`{mirror}` has an invalid repository path `{path}`: lowercase letters, digits and single `.`, `_` or `-` between them, components separated by `/`"
                ));
            }
            Some(path.to_owned())
        }
    };
    Ok((host.to_owned(), path))
}

/// At least one PEM `CERTIFICATE` block, each with a base64 body, and
/// nothing but whitespace between blocks.
fn check_pem_certificates(pem: &str) -> Result<(), String> {
    use base64::Engine;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut rest = pem.trim();
    let mut blocks = 0;
    while !rest.is_empty() {
        let Some(after_begin) = rest.strip_prefix(BEGIN) else {
            return Err(format!(
                "is not a PEM certificate bundle: certificate {} does not start with `{BEGIN}`",
                blocks + 1
            ));
        };
        let Some((body, after_end)) = after_begin.split_once(END) else {
            return Err(format!(
                "is not a PEM certificate bundle: certificate {} has no `{END}`",
                blocks + 1
            ));
        };
        let base64: String = body.split_whitespace().collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(&base64)
            .map_err(|e| format!("certificate {} is not valid base64: {e}", blocks + 1))?;
        // Every DER certificate is a SEQUENCE (tag 0x30).
        if der.first() != Some(&0x30) {
            return Err(format!(
                "certificate {} does not hold a DER certificate",
                blocks + 1
            ));
        }
        blocks += 1;
        rest = after_end.trim_start();
    }
    if blocks == 0 {
        return Err(format!("is empty: paste one or more `{BEGIN}` blocks"));
    }
    Ok(())
}

/// `spec.storage`, or the control plane domain's datastore by default.
fn validate_storage(
    p: &mut Problems,
    raw: Option<&RawStorage>,
    domains: &[RawPlacementDomain],
    control_plane_domain: &str,
) -> Option<DefaultStorageSpec> {
    let Some(raw) = raw else {
        // Not a datastore cluster: the CSI driver needs one datastore.
        return domains
            .iter()
            .find(|d| d.name.trim() == control_plane_domain.trim())
            .filter(|d| d.datastore_cluster.is_none())
            .and_then(|d| d.datastore.as_deref())
            .map(|path| {
                let path = path.trim().trim_end_matches('/');
                DefaultStorageSpec::Datastore(path.to_owned())
            });
    };
    match (&raw.default_datastore, &raw.storage_policy) {
        (Some(_), Some(_)) => {
            p.push(
                "spec.storage",
                "set either `defaultDatastore` or `storagePolicy`, not both",
            );
            None
        }
        (None, None) => {
            p.push(
                "spec.storage",
                "set `defaultDatastore` or `storagePolicy` (or drop `storage` to default to the control plane domain's datastore)",
            );
            None
        }
        (Some(path), None) => {
            let path = required_path(p, "spec.storage.defaultDatastore", path)?;
            let cluster = domains.iter().enumerate().find(|(_, d)| {
                d.datastore_cluster
                    .as_deref()
                    .is_some_and(|c| c.trim().trim_end_matches('/') == path)
            });
            if let Some((index, _)) = cluster {
                p.push(
                    "spec.storage.defaultDatastore",
                    format!("`{path}` is the datastore cluster of spec.placementDomains[{index}]: a datastore cluster cannot be the CSI default datastore; name one of its datastores or use `storagePolicy`"),
                );
                return None;
            }
            Some(DefaultStorageSpec::Datastore(path))
        }
        (None, Some(name)) => {
            let name = name.trim();
            if name.is_empty() || name.chars().any(char::is_control) {
                p.push(
                    "spec.storage.storagePolicy",
                    "must be a storage policy name on one line",
                );
                return None;
            }
            Some(DefaultStorageSpec::Policy(name.to_owned()))
        }
    }
}
