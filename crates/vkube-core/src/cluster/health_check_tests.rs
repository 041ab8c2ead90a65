//! `healthCheck` of the control plane and node pools: defaults, the
//! canonical form, validation naming the field, and the spec hash.

use std::time::Duration;

use super::spec_tests::EXAMPLE;
use super::*;

fn with_health(control_plane: Option<&str>, pool: Option<&str>) -> Result<ClusterSpec, Error> {
    let mut text = EXAMPLE.to_owned();
    if let Some(check) = control_plane {
        text = text.replace(
            "    placementDomain: az1\n",
            &format!("    placementDomain: az1\n    healthCheck: {check}\n"),
        );
    }
    if let Some(check) = pool {
        // The second pool, `infra`.
        text = text.replace(
            "      placementDomains: [az2, az1]\n",
            &format!("      placementDomains: [az2, az1]\n      healthCheck: {check}\n"),
        );
    }
    ClusterSpec::from_yaml(&text)
}

fn problems(control_plane: Option<&str>, pool: Option<&str>) -> Vec<String> {
    match with_health(control_plane, pool) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems().iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn absent_means_no_remediation_and_empty_means_the_defaults() {
    let spec = with_health(None, None).unwrap();
    assert!(spec.groups().iter().all(|g| g.health_check().is_none()));
    assert!(!spec.to_yaml().contains("healthCheck"));

    let spec = with_health(Some("{}"), None).unwrap();
    let check = spec.control_plane().health_check().unwrap();
    assert_eq!(check, &HealthCheck::default());
    assert_eq!(spec.group("cp").unwrap().health_check(), Some(check));
    assert!(spec.group("infra").unwrap().health_check().is_none());
    let rendered: Vec<String> = check
        .unhealthy_conditions()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(rendered, ["Ready=False for 5m", "Ready=Unknown for 5m"]);
    assert_eq!(check.node_startup_timeout(), Some(Duration::from_secs(600)));
    assert_eq!(check.max_unhealthy(), MaxUnhealthy::Percent(100));
}

#[test]
fn the_canonical_form_writes_every_default_and_round_trips() {
    let spec = with_health(
        Some("{}"),
        Some("{unhealthyConditions: [{type: DiskPressure, status: \"True\", timeout: 90s}], nodeStartupTimeout: 0, maxUnhealthy: 2}"),
    )
    .unwrap();
    let yaml = spec.to_yaml();
    assert!(
        yaml.contains(
            "    healthCheck:
      unhealthyConditions:
      - type: Ready
        status: 'False'
        timeout: 5m
      - type: Ready
        status: Unknown
        timeout: 5m
      nodeStartupTimeout: 10m
      maxUnhealthy: 100%
"
        ),
        "{yaml}"
    );
    assert!(
        yaml.contains(
            "    healthCheck:
      unhealthyConditions:
      - type: DiskPressure
        status: 'True'
        timeout: 1m30s
      nodeStartupTimeout: 0s
      maxUnhealthy: 2
"
        ),
        "{yaml}"
    );
    let back = ClusterSpec::from_yaml(&yaml).unwrap();
    assert_eq!(back, spec);
    assert_eq!(back.to_yaml(), yaml);
    let infra = back.group("infra").unwrap().health_check().unwrap().clone();
    assert_eq!(infra.node_startup_timeout(), None, "0 turns the check off");
    assert_eq!(infra.max_unhealthy(), MaxUnhealthy::Count(2));
}

#[test]
fn max_unhealthy_reads_counts_and_percentages_rounding_down() {
    for (text, expected) in [
        ("40%", MaxUnhealthy::Percent(40)),
        ("\"3\"", MaxUnhealthy::Count(3)),
        ("0", MaxUnhealthy::Count(0)),
        ("100%", MaxUnhealthy::Percent(100)),
    ] {
        let spec = with_health(None, Some(&format!("{{maxUnhealthy: {text}}}"))).unwrap();
        let check = spec.node_pools()[1].health_check().unwrap();
        assert_eq!(check.max_unhealthy(), expected, "{text}");
    }
    assert_eq!(MaxUnhealthy::Percent(40).allowed(3), 1);
    assert_eq!(MaxUnhealthy::Percent(40).allowed(5), 2);
    assert_eq!(MaxUnhealthy::Percent(40).allowed(2), 0);
    assert_eq!(MaxUnhealthy::Percent(100).allowed(7), 7);
    assert_eq!(MaxUnhealthy::Count(2).allowed(1), 2);
}

#[test]
fn validation_names_the_field() {
    let pool = "spec.nodePools[1].healthCheck";
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "{maxUnhealthy: 40 %}",
            vec![format!("{pool}.maxUnhealthy: `40 %` is not a count like `2` or a percentage like `40%`")],
        ),
        ("{maxUnhealthy: 101%}", vec![format!("{pool}.maxUnhealthy: 101% is more than 100%")]),
        (
            "{maxUnhealthy: -1}",
            vec![format!("{pool}.maxUnhealthy: -1 is not a count of nodes (0 or more)")],
        ),
        (
            "{nodeStartupTimeout: 30s}",
            vec![format!("{pool}.nodeStartupTimeout: 30s is shorter than the 1m a VM needs to boot and join (`0` turns the check off)")],
        ),
        (
            "{nodeStartupTimeout: 200h}",
            vec![format!("{pool}.nodeStartupTimeout: 200h is longer than the 168h a health check may wait")],
        ),
        (
            "{nodeStartupTimeout: 10 minutes}",
            vec![format!("{pool}.nodeStartupTimeout: `10 minutes` is not a duration like `90s`, `5m` or `1h30m` (whole numbers with h, m, s)")],
        ),
        (
            "{unhealthyConditions: []}",
            vec![format!("{pool}.unhealthyConditions: lists no condition: name at least one, or leave the field out for `Ready` `False` or `Unknown` for 5m")],
        ),
        (
            "{unhealthyConditions: [{type: Ready, status: \"True\", timeout: 5m}, {type: Ready, status: false, timeout: 5m}, {type: '', status: Unknown, timeout: 0}, {type: Ready, status: Unknown, timeout: 5x}]}",
            vec![
                format!("{pool}.unhealthyConditions[0].status: `Ready` `True` is a healthy node"),
                format!("{pool}.unhealthyConditions[1].status: `false` is not one of `True`, `False`, `Unknown` (quote them in YAML: \"False\")"),
                format!("{pool}.unhealthyConditions[2].type: `` is not a node condition type like `Ready` or `DiskPressure`"),
                format!("{pool}.unhealthyConditions[2].timeout: must be longer than 0: every node passes through a short `NotReady` while it starts"),
                format!("{pool}.unhealthyConditions[3].timeout: `5x` is not a duration like `90s`, `5m` or `1h30m` (whole numbers with h, m, s)"),
            ],
        ),
        (
            "{unhealthyConditions: [{type: Ready, status: Unknown, timeout: 5m}, {type: Ready, status: Unknown, timeout: 9m}]}",
            vec![format!("{pool}.unhealthyConditions[1].type: `Ready` `Unknown` is already listed at {pool}.unhealthyConditions[0]")],
        ),
    ];
    for (check, expected) in cases {
        assert_eq!(problems(None, Some(check)), expected, "{check}");
    }
    assert!(matches!(
        with_health(Some("{maxUnhealthy: 2.5}"), None),
        Err(Error::Yaml { .. })
    ));
}

#[test]
fn yaml_that_fits_neither_form_is_refused_with_its_path() {
    let text = EXAMPLE.replace(
        "    placementDomain: az1\n",
        "    placementDomain: az1\n    healthCheck: {maxUnhealthy: [1]}\n",
    );
    let error = ClusterSpec::from_yaml(&text).unwrap_err();
    let source = std::error::Error::source(&error).unwrap().to_string();
    assert!(
        source.contains("spec.controlPlane.healthCheck")
            && source.contains("a count like `2` or a percentage like `40%`"),
        "{source}"
    );
    let unknown = EXAMPLE.replace(
        "    placementDomain: az1\n",
        "    placementDomain: az1\n    healthCheck: {maxUnhealty: 1}\n",
    );
    let source = std::error::Error::source(&ClusterSpec::from_yaml(&unknown).unwrap_err())
        .unwrap()
        .to_string();
    assert!(source.contains("unknown field `maxUnhealty`"), "{source}");
}

#[test]
fn health_settings_never_change_the_spec_hash() {
    let base = with_health(None, None).unwrap();
    let checked = with_health(
        Some("{maxUnhealthy: 1, nodeStartupTimeout: 20m}"),
        Some("{unhealthyConditions: [{type: Ready, status: Unknown, timeout: 1m}]}"),
    )
    .unwrap();
    for group in ["cp", "workers", "infra"] {
        assert_eq!(
            base.group(group).unwrap().spec_hash(),
            checked.group(group).unwrap().spec_hash(),
            "{group}"
        );
    }
}
