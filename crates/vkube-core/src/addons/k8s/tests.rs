use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::*;
use crate::addons::Addon;

fn sample_pod() -> PodSpec {
    PodSpec {
        service_account_name: "sa".into(),
        priority_class_name: "system-node-critical",
        init_containers: vec![Container::new("init", "init:1")],
        containers: vec![Container::new("c", "img:1")
            .args(&["--a"])
            .mount_read_only("cfg", "/etc/cloud")],
        volumes: vec![
            Volume::host_path("dev", "/dev", None),
            Volume::secret("cfg", "s"),
            Volume::empty_dir("tmp"),
        ],
        ..PodSpec::default()
    }
}

fn parse(text: &str) -> Vec<serde_yaml::Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| serde_yaml::Value::deserialize(doc).unwrap())
        .filter(|doc| !doc.is_null())
        .collect()
}

#[test]
fn flattened_volume_sources_and_skipped_defaults() {
    let mut stream = Stream::new("one\ntwo");
    stream.push(&daemon_set(
        Meta::namespaced("ds", "kube-system", &Labels::component("comp")),
        1,
        PodTemplate::of_component("comp", sample_pod()),
    ));
    let text = stream.finish();
    assert!(text.starts_with("# one\n# two\n---\n"), "{text}");
    let value = &parse(&text)[0];
    let spec = &value["spec"]["template"]["spec"];
    assert_eq!(spec["volumes"][0]["hostPath"]["path"], "/dev");
    assert!(spec["volumes"][0]["hostPath"].get("type").is_none());
    assert_eq!(spec["volumes"][1]["secret"]["secretName"], "s");
    assert!(spec["volumes"][2]["emptyDir"]
        .as_mapping()
        .unwrap()
        .is_empty());
    assert!(spec.get("hostNetwork").is_none() && spec.get("tolerations").is_none());
    assert_eq!(spec["containers"][0]["volumeMounts"][0]["readOnly"], true);
    assert_eq!(value["spec"]["selector"]["matchLabels"][NAME_LABEL], "comp");
    assert_eq!(
        value["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"],
        1
    );
}

#[test]
fn secrets_are_base64_and_bindings_pick_their_kind() {
    let secret = secret(
        Meta::namespaced("s", "ns", &Labels::component("c")),
        &BTreeMap::from([("k".to_owned(), "pässword".to_owned())]),
    );
    let text = serde_yaml::to_string(&secret).unwrap();
    assert!(!text.contains("pässword"), "{text}");
    assert!(text.contains(&STANDARD.encode("pässword")), "{text}");

    let labels = Labels::component("c");
    let cluster = binding(
        Meta::cluster("b", &labels),
        RoleRef::cluster_role("r"),
        vec![Subject::service_account("sa", "ns")],
    );
    let namespaced = binding(
        Meta::namespaced("b", "kube-system", &labels),
        RoleRef::role("r"),
        vec![Subject::user("u")],
    );
    assert!(serde_yaml::to_string(&cluster)
        .unwrap()
        .contains("kind: ClusterRoleBinding"));
    let namespaced = serde_yaml::to_string(&namespaced).unwrap();
    assert!(namespaced.contains("kind: RoleBinding") && namespaced.contains("kind: Role\n"));
    assert!(namespaced.contains("apiGroup: rbac.authorization.k8s.io\n  kind: User"));
}

#[test]
fn documents_lead_with_api_version_kind_metadata() {
    let mut stream = Stream::new("");
    stream.push(&service_account(Meta::namespaced(
        "a",
        "kube-system",
        &Labels::part_of("x"),
    )));
    let yaml = stream.finish();
    assert!(
        yaml.starts_with("---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n"),
        "{yaml}"
    );
}

#[test]
fn the_manifest_lists_the_pods_images_and_knows_its_secrets() {
    let labels = Labels::component("comp");
    let mut stream = Stream::new("header");
    stream.push(&config_map(
        Meta::namespaced("cm", "ns", &labels),
        [("k", "v")],
    ));
    let manifest = |stream: Stream| stream.into_manifest(Addon::Csi, "comp", "v1", "f.yaml");
    assert!(!manifest(stream).has_secrets);

    let mut stream = Stream::new("");
    stream.push(&deployment(
        Meta::namespaced("d", "ns", &labels),
        2,
        Strategy::Recreate,
        PodTemplate::of_component("comp", sample_pod()),
    ));
    stream.push(&daemon_set(
        Meta::namespaced("ds", "ns", &labels),
        1,
        PodTemplate::of_component("comp", sample_pod()),
    ));
    stream.push(&secret(
        Meta::namespaced("s", "ns", &labels),
        &BTreeMap::new(),
    ));
    let manifest = manifest(stream);
    assert!(manifest.has_secrets);
    assert_eq!(manifest.images, ["img:1", "init:1"]);
    assert_eq!(manifest.file_name, "f.yaml");
    let docs = parse(&manifest.yaml);
    assert_eq!(docs[0]["spec"]["strategy"]["type"], "Recreate");
    assert!(docs[0]["spec"]["strategy"].get("rollingUpdate").is_none());
}

#[test]
fn strategies_amounts_and_probes() {
    let strategy = Strategy::rolling(Amount::Percent(50), Some(Amount::Pods(0)));
    let strategy = serde_json::to_value(strategy).unwrap();
    assert_eq!(
        strategy,
        serde_json::json!({
            "type": "RollingUpdate",
            "rollingUpdate": { "maxUnavailable": "50%", "maxSurge": 0 },
        })
    );
    let probe = Probe::get(
        HttpGet::new("/healthz", 9234)
            .to("127.0.0.1", "HTTP")
            .header("a", "b"),
    )
    .period(5);
    assert_eq!(
        serde_json::to_value(probe).unwrap(),
        serde_json::json!({
            "httpGet": {
                "host": "127.0.0.1",
                "path": "/healthz",
                "port": 9234,
                "scheme": "HTTP",
                "httpHeaders": [{ "name": "a", "value": "b" }],
            },
            "periodSeconds": 5,
        })
    );
    let named = serde_json::to_value(Probe::http("/healthz", "health")).unwrap();
    assert_eq!(named["httpGet"]["port"], "health");
}

#[test]
fn environment_sources_are_keys_not_tags() {
    let container = Container::new("c", "i")
        .env_field("NODE", "spec.nodeName")
        .env_var(EnvVar::config_map_key("DEBUG", "cm", "debug", true))
        .env_var(EnvVar::resource("GOMEMLIMIT", "limits.memory", "1"));
    let yaml = crate::yaml::to_string(&container);
    assert!(!yaml.contains('!'), "{yaml}");
    let value: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(
        value["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    assert_eq!(
        value["env"][1]["valueFrom"]["configMapKeyRef"]["optional"],
        true
    );
    assert_eq!(
        value["env"][2]["valueFrom"]["resourceFieldRef"]["resource"],
        "limits.memory"
    );
}

#[test]
fn apparmor_is_a_field_from_1_30_and_annotations_before() {
    let template = |minor| {
        serde_json::to_value(
            PodTemplate::of_component("c", sample_pod()).apparmor_unconfined(minor, &["c"]),
        )
        .unwrap()
    };
    let old = template(29);
    assert_eq!(
        old["metadata"]["annotations"]["container.apparmor.security.beta.kubernetes.io/c"],
        "unconfined"
    );
    assert!(old["spec"].get("securityContext").is_none());
    let new = template(30);
    assert!(new["metadata"].get("annotations").is_none());
    assert_eq!(
        new["spec"]["securityContext"]["appArmorProfile"]["type"],
        "Unconfined"
    );
}
