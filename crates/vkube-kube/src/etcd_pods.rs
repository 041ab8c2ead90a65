//! Where a kubeadm cluster's etcd members serve clients, read through the API server: kubeadm
//! runs each member as the static pod `kube-system/etcd-<node>` (labels `component=etcd`,
//! `tier=control-plane`) and writes the member's client URLs into its annotation
//! `kubeadm.kubernetes.io/etcd.advertise-client-urls` — the same place kubeadm itself looks
//! when it needs the etcd endpoints of a running cluster.

use k8s_openapi::api::core::v1::Pod;
use kube::core::ObjectList;

use crate::client::{self, KubeClient};
use crate::error::Result;
use crate::nodes::LIST_PAGE;

/// The annotation kubeadm writes on each etcd static pod.
pub const ETCD_CLIENT_URLS_ANNOTATION: &str = "kubeadm.kubernetes.io/etcd.advertise-client-urls";

/// The label selector of kubeadm's etcd static pods.
const ETCD_POD_SELECTOR: &str = "component=etcd,tier=control-plane";

/// One etcd member's client URLs, as its static pod advertises them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdEndpoint {
    /// The node the member runs on (`spec.nodeName`).
    pub node: String,
    /// Its client URLs, e.g. `https://10.20.0.11:2379`.
    pub client_urls: Vec<String>,
}

/// The endpoints of `pods`, in node order; pods without the annotation are left out.
pub(crate) fn endpoints_of(pods: Vec<Pod>) -> Vec<EtcdEndpoint> {
    let mut endpoints: Vec<EtcdEndpoint> = pods
        .into_iter()
        .filter_map(|pod| {
            let node = pod.spec.as_ref()?.node_name.clone()?;
            let urls = pod
                .metadata
                .annotations
                .as_ref()?
                .get(ETCD_CLIENT_URLS_ANNOTATION)?;
            let client_urls: Vec<String> = urls
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect();
            (!client_urls.is_empty()).then_some(EtcdEndpoint { node, client_urls })
        })
        .collect();
    endpoints.sort_by(|a, b| a.node.cmp(&b.node));
    endpoints
}

impl KubeClient {
    pub(crate) async fn list_etcd_endpoints(&self) -> Result<Vec<EtcdEndpoint>> {
        let selector = client::query_escape(ETCD_POD_SELECTOR);
        let mut pods = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = format!(
                "/api/v1/namespaces/kube-system/pods?labelSelector={selector}&limit={LIST_PAGE}"
            );
            if let Some(token) = &token {
                path.push_str(&format!("&continue={}", client::query_escape(token)));
            }
            let page: ObjectList<Pod> = self.get_json("list of the etcd pods", &path).await?;
            pods.extend(page.items);
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(endpoints_of(pods));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_etcd_pod_names_its_node_and_client_url() {
        let list: ObjectList<Pod> =
            serde_json::from_str(vkube_test_support::kube_api::fixtures::POD_LIST).unwrap();
        let etcd: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.get("component").map(String::as_str) == Some("etcd"))
            })
            .collect();
        let endpoints = endpoints_of(etcd);
        assert_eq!(endpoints.len(), 1);
        assert_eq!(endpoints[0].node, "demo-cp-0");
        assert_eq!(endpoints[0].client_urls, vec!["https://10.20.0.11:2379"]);
    }
}
