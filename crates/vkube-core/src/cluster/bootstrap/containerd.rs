//! containerd's registry configuration for a `spec.registry` mirror (the
//! `hosts.toml` layout of containerd's CRI plugin, one directory per
//! registry under [`CERTS_D`]):
//!
//! - `registry.k8s.io`, `docker.io`, `quay.io` and `ghcr.io` get a
//!   `hosts.toml` that sends pulls to the mirror first (their `server`
//!   stays the upstream, the fallback when the mirror lacks an image), so
//!   references nobody rewrote (containerd's own sandbox `pause` image,
//!   images in user manifests) come from the mirror too. A mirror with a
//!   path prefix (`harbor.example.com/k8s`) is addressed as
//!   `https://harbor.example.com/v2/k8s` with `override_path = true`:
//!   containerd then appends `<repository>/manifests/<tag>` to that path
//!   instead of inserting `/v2` itself, the same layout `addons::image`
//!   rewrites references to (`quay.io/cilium/cilium` →
//!   `harbor.example.com/k8s/cilium/cilium`).
//! - The mirror host gets a `hosts.toml` of its own carrying the CA
//!   (`ca`) or `skip_verify`, for the references that already name it.
//!
//! containerd reads these only when its CRI registry `config_path` lists
//! the directory; containerd 2 does by default, containerd 1.x only when
//! its config file says so. [`ENSURE_CONFIG_PATH`] holds the shell
//! functions that make sure it does, whatever the image shipped: they find
//! the config file `containerd.service` really uses (Flatcar passes
//! `--config $CONTAINERD_CONFIG`, by default the read-only
//! `/usr/share/containerd/config.toml`, which is then copied to
//! `/etc/containerd/config.toml` and containerd pointed at the copy with a
//! drop-in) and add `config_path` to it.

use super::content::{file, File};
use crate::cluster::spec::Registry;

/// containerd's registry hosts directory.
pub const CERTS_D: &str = "/etc/containerd/certs.d";
/// Where the mirror's CA bundle is written.
pub const MIRROR_CA_PATH: &str = "/etc/containerd/certs.d/vkube-mirror-ca.crt";
/// Registries whose pulls go through the mirror.
pub const UPSTREAMS: [&str; 4] = ["registry.k8s.io", "docker.io", "quay.io", "ghcr.io"];

/// The upstream's own registry endpoint.
fn upstream_server(upstream: &str) -> String {
    match upstream {
        // Docker Hub's registry API is not served at docker.io.
        "docker.io" => "https://registry-1.docker.io".to_owned(),
        other => format!("https://{other}"),
    }
}

/// The `[host."…"]` table for the mirror.
fn mirror_host(registry: &Registry, capabilities: &str) -> String {
    let mut table = match registry.path() {
        Some(path) => format!(
            "[host.\"https://{}/v2/{path}\"]\n  capabilities = [{capabilities}]\n  override_path = true\n",
            registry.host()
        ),
        None => format!(
            "[host.\"https://{}\"]\n  capabilities = [{capabilities}]\n",
            registry.host()
        ),
    };
    if registry.ca_bundle().is_some() {
        table.push_str(&format!("  ca = \"{MIRROR_CA_PATH}\"\n"));
    }
    if registry.insecure_skip_verify() {
        table.push_str("  skip_verify = true\n");
    }
    table
}

/// The files that point containerd at `registry`: the CA, one
/// `hosts.toml` per upstream (except the mirror's own host), and the
/// mirror host's.
pub fn files(registry: &Registry) -> Vec<File> {
    let mut files = Vec::new();
    if let Some(ca) = registry.ca_bundle() {
        files.push(file(MIRROR_CA_PATH, 0o644, ca));
    }
    let mirror = registry.mirror();
    for upstream in UPSTREAMS {
        // A mirror on an upstream (`ghcr.io/acme/mirror`) must not send
        // that upstream's pulls into itself.
        if registry.host() == upstream {
            continue;
        }
        let text = format!(
            "# vkube: pull {upstream} images through the mirror {mirror}\nserver = \"{}\"\n\n{}",
            upstream_server(upstream),
            mirror_host(registry, "\"pull\", \"resolve\""),
        );
        files.push(file(
            &format!("{CERTS_D}/{upstream}/hosts.toml"),
            0o644,
            text,
        ));
    }
    let own = {
        let mut text = format!(
            "# vkube: the mirror {mirror} itself\nserver = \"https://{}\"\n",
            registry.host()
        );
        if registry.ca_bundle().is_some() {
            text.push_str(&format!("ca = \"{MIRROR_CA_PATH}\"\n"));
        }
        if registry.insecure_skip_verify() {
            text.push_str("skip_verify = true\n");
        }
        text
    };
    files.push(file(
        &format!("{CERTS_D}/{}/hosts.toml", registry.host()),
        0o644,
        own,
    ));
    files
}

/// `vkube_containerd_certs_d` and its helpers: finds containerd's config
/// file and (`vkube_containerd_config_path CONFIG`) makes containerd's CRI
/// plugin read [`CERTS_D`]. Handles what images ship: no config file, containerd
/// 2's `version = 3`, containerd 1.x's `version = 2` and the header-less
/// version 1, a `config_path` that is empty (containerd 1.x's
/// `config default`), set elsewhere (ours is prepended, `:`-separated) or
/// absent (added under the registry table, which is created when
/// missing). Prints whether it changed the file; idempotent.
pub const ENSURE_CONFIG_PATH: &str = r#"# vkube_containerd_config_file: the config file containerd.service starts
# containerd with (`--config FILE`, also through an environment variable),
# else containerd's default.
vkube_containerd_config_file() {
  local argv file name
  argv=$(systemctl show -p ExecStart containerd 2>/dev/null)
  file=$(sed -n -E 's/.*argv\[\]=[^;]* (--config|-c)[= ]([^ ;]+).*/\2/p' <<<"$argv" | head -n 1)
  case "$file" in
    '$'*)
      name=${file#\$}
      name=${name#\{}
      name=${name%\}}
      file=$(systemctl show -p Environment containerd 2>/dev/null |
        sed 's/^Environment=//' | tr ' ' '
' | sed -n "s/^$name=//p" | head -n 1)
      ;;
  esac
  echo "${file:-/etc/containerd/config.toml}"
}

# vkube_containerd_certs_d: make the running containerd's config read
# /etc/containerd/certs.d. A config under /usr (read-only on Flatcar) is
# copied to /etc/containerd/config.toml first and containerd pointed at the
# copy through its CONTAINERD_CONFIG variable.
vkube_containerd_certs_d() {
  local etc=${VKUBE_ETC:-/etc} config copy
  config=$(vkube_containerd_config_file)
  copy="$etc/containerd/config.toml"
  case "$config" in
    /usr/*)
      mkdir -p "$etc/containerd" "$etc/systemd/system/containerd.service.d"
      [ -s "$copy" ] || cp "$config" "$copy"
      printf '[Service]\nEnvironment=CONTAINERD_CONFIG=%s\n' /etc/containerd/config.toml \
        >"$etc/systemd/system/containerd.service.d/10-vkube-config.conf"
      systemctl daemon-reload
      config=$copy
      ;;
  esac
  vkube_containerd_config_path "$config"
}

# vkube_containerd_config_path CONFIG: make containerd's CRI plugin read
# /etc/containerd/certs.d (registry mirrors), whatever config the image has.
vkube_containerd_config_path() {
  local config=$1 dir=/etc/containerd/certs.d version header n current value
  mkdir -p "$(dirname "$config")"
  if [ ! -s "$config" ]; then
    # No file: containerd 2 reads certs.d by default, 1.x does not.
    if containerd --version 2>/dev/null | grep -Eq ' v?2\.'; then
      echo "containerd: no $config; containerd 2 reads $dir by default"
      return 0
    fi
    printf 'version = 2\n\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "%s"\n' "$dir" > "$config"
    echo "containerd: wrote $config with config_path = $dir"
    return 0
  fi
  version=$(sed -n -E 's/^[[:space:]]*version[[:space:]]*=[[:space:]]*([0-9]+).*/\1/p' "$config" | head -n 1)
  case "${version:-1}" in
    3) header='[plugins."io.containerd.cri.v1.images".registry]' ;;
    2) header='[plugins."io.containerd.grpc.v1.cri".registry]' ;;
    *) header='[plugins.cri.registry]' ;;
  esac
  if grep -Eq '^[[:space:]]*\[[^]]*registry\.mirrors' "$config"; then
    echo "containerd: warning: $config configures registry.mirrors, which containerd 1.x refuses next to config_path" >&2
  fi
  n=$(grep -nE '^[[:space:]]*config_path[[:space:]]*=' "$config" | head -n 1 | cut -d: -f1)
  if [ -n "$n" ]; then
    current=$(sed -n "${n}p" "$config" | sed -E "s/^[^=]*=[[:space:]]*//; s/[[:space:]]*(#.*)?$//; s/^[\"']//; s/[\"']$//")
    case ":$current:" in
      *":$dir:"*) echo "containerd: config_path already lists $dir"; return 0 ;;
    esac
    value=$dir
    [ -n "$current" ] && value="$dir:$current"
    sed -i -E "${n}s|^([[:space:]]*)config_path[[:space:]]*=.*|\\1config_path = \"$value\"|" "$config"
    echo "containerd: config_path = $value"
    return 0
  fi
  # The registry table, in either quoting style and with any spacing.
  n=$(awk -v want="$header" '{ line = $0; gsub(/[[:space:]]/, "", line); gsub(/'"'"'/, "\"", line); if (line == want) { print NR; exit } }' "$config")
  if [ -n "$n" ]; then
    sed -i "${n}a\\  config_path = \"$dir\"" "$config"
  else
    printf '\n%s\n  config_path = "%s"\n' "$header" "$dir" >> "$config"
  fi
  echo "containerd: added config_path = $dir"
}
"#;
