//! The CNI conflist that `install-cni` writes: a template with placeholders, rendered and then
//! checked the way a runtime and the `manul` plugin would read it (a conflist with `manul`
//! first, whose plugin config passes the plugin's own validation). No I/O.
//!
//! Placeholders: `__AGENT_SOCKET__` (a JSON string's contents) and `__CNI_MTU__` (a number;
//! 0 lets the agent use the host's MTU). Any other `__NAME__` left in the text is an error,
//! so a template written for another installer (Calico's `__KUBECONFIG_FILEPATH__`) is refused
//! instead of installed half-rendered.

use std::path::Path;

use serde_json::{Map, Value};

use crate::cni::{NetConf, config::ConfigError};

/// The conflist installed when no template is given: manul, then portmap for hostPort.
pub const DEFAULT_TEMPLATE: &str = r#"{
  "name": "manul",
  "cniVersion": "1.0.0",
  "plugins": [
    {
      "type": "manul",
      "agent_socket": "__AGENT_SOCKET__",
      "mtu": __CNI_MTU__,
      "ipam": {
        "assign_ipv4": true,
        "assign_ipv6": false
      }
    },
    {
      "type": "portmap",
      "snat": true,
      "capabilities": { "portMappings": true }
    }
  ]
}
"#;

/// The values put into the template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConflistSettings<'a> {
    pub agent_socket: &'a Path,
    /// 0: the agent picks the pod MTU from the host's default route.
    pub mtu: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConflistError {
    #[error("the agent socket {0:?} is not an absolute UTF-8 path without quotes or backslashes")]
    AgentSocket(String),
    #[error(
        "the template still holds the placeholder {0} after rendering (known: __AGENT_SOCKET__, __CNI_MTU__)"
    )]
    UnknownPlaceholder(String),
    #[error("the rendered conflist is not JSON: {0}")]
    Json(String),
    #[error("the rendered conflist: {0}")]
    Shape(String),
    #[error("the rendered conflist's manul plugin config is refused by the plugin: {0}")]
    Plugin(#[from] ConfigError),
}

/// Renders `template` and checks the result; returns the text to install (ending in a newline).
pub fn render(template: &str, settings: &ConflistSettings<'_>) -> Result<String, ConflistError> {
    let socket = settings
        .agent_socket
        .to_str()
        .filter(|s| settings.agent_socket.is_absolute() && !s.contains(['"', '\\']))
        .ok_or_else(|| ConflistError::AgentSocket(settings.agent_socket.display().to_string()))?;
    let mut text = template
        .replace("__AGENT_SOCKET__", socket)
        .replace("__CNI_MTU__", &settings.mtu.to_string());
    if let Some(placeholder) = leftover_placeholder(&text) {
        return Err(ConflistError::UnknownPlaceholder(placeholder));
    }
    check(&text)?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

fn leftover_placeholder(text: &str) -> Option<String> {
    let pattern = regex::Regex::new(r"__[A-Z][A-Z0-9_]*__").ok()?;
    pattern.find(text).map(|found| found.as_str().to_string())
}

fn shape(reason: impl Into<String>) -> ConflistError {
    ConflistError::Shape(reason.into())
}

/// A conflist as libcni reads it, whose first plugin is manul and valid for the plugin.
pub fn check(text: &str) -> Result<(), ConflistError> {
    let value: Value =
        serde_json::from_str(text).map_err(|error| ConflistError::Json(error.to_string()))?;
    let conflist = value
        .as_object()
        .ok_or_else(|| shape("expected a JSON object"))?;
    let version = string_field(conflist, "cniVersion")?;
    let name = string_field(conflist, "name")?;
    let plugins = conflist
        .get("plugins")
        .and_then(Value::as_array)
        .filter(|plugins| !plugins.is_empty())
        .ok_or_else(|| shape("plugins: expected a non-empty list"))?;
    let mut first = None;
    for (index, plugin) in plugins.iter().enumerate() {
        let plugin = plugin
            .as_object()
            .ok_or_else(|| shape(format!("plugins[{index}]: expected an object")))?;
        string_field(plugin, "type")
            .map_err(|_| shape(format!("plugins[{index}].type: missing or not a string")))?;
        first.get_or_insert(plugin);
    }
    let manul = first.ok_or_else(|| shape("plugins: expected a non-empty list"))?;
    if manul.get("type").and_then(Value::as_str) != Some("manul") {
        return Err(shape("plugins[0].type: manul must be the first plugin"));
    }
    // The runtime hands each plugin its entry with the list's cniVersion and name added.
    let mut config = manul.clone();
    config.insert("cniVersion".into(), Value::String(version.to_string()));
    config.insert("name".into(), Value::String(name.to_string()));
    NetConf::from_map(&config)?;
    Ok(())
}

fn string_field<'a>(map: &'a Map<String, Value>, key: &str) -> Result<&'a str, ConflistError> {
    map.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| shape(format!("{key}: missing or not a string")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mtu: u32) -> ConflistSettings<'static> {
        ConflistSettings {
            agent_socket: Path::new("/var/run/manul/agent.sock"),
            mtu,
        }
    }

    #[test]
    fn the_default_template_renders_manul_then_portmap() {
        let text = render(DEFAULT_TEMPLATE, &settings(0)).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["cniVersion"], "1.0.0");
        assert_eq!(value["plugins"][0]["type"], "manul");
        assert_eq!(
            value["plugins"][0]["agent_socket"],
            "/var/run/manul/agent.sock"
        );
        assert_eq!(value["plugins"][0]["mtu"], 0);
        assert_eq!(value["plugins"][1]["type"], "portmap");
        assert_eq!(value["plugins"][1]["capabilities"]["portMappings"], true);
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn the_mtu_and_socket_are_substituted() {
        let socket = Path::new("/run/other/agent.sock");
        let text = render(
            DEFAULT_TEMPLATE,
            &ConflistSettings {
                agent_socket: socket,
                mtu: 1410,
            },
        )
        .unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["plugins"][0]["mtu"], 1410);
        assert_eq!(value["plugins"][0]["agent_socket"], "/run/other/agent.sock");
    }

    #[test]
    fn an_mtu_the_plugin_refuses_is_refused_here() {
        let error = render(DEFAULT_TEMPLATE, &settings(20)).unwrap_err();
        assert!(matches!(error, ConflistError::Plugin(_)), "{error}");
        assert!(error.to_string().contains("mtu"), "{error}");
    }

    #[test]
    fn a_relative_or_quoted_socket_is_refused() {
        for socket in ["agent.sock", "/run/a\"b.sock"] {
            let settings = ConflistSettings {
                agent_socket: Path::new(socket),
                mtu: 0,
            };
            assert!(matches!(
                render(DEFAULT_TEMPLATE, &settings),
                Err(ConflistError::AgentSocket(_))
            ));
        }
    }

    #[test]
    fn an_unknown_placeholder_is_refused() {
        let template = DEFAULT_TEMPLATE.replace(
            "\"snat\": true",
            "\"kubeconfig\": \"__KUBECONFIG_FILEPATH__\"",
        );
        assert_eq!(
            render(&template, &settings(0)),
            Err(ConflistError::UnknownPlaceholder(
                "__KUBECONFIG_FILEPATH__".into()
            ))
        );
    }

    #[test]
    fn manul_must_come_first() {
        let template =
            r#"{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"portmap"},{"type":"manul"}]}"#;
        let error = render(template, &settings(0)).unwrap_err();
        assert!(error.to_string().contains("first"), "{error}");
    }

    #[test]
    fn broken_shapes_are_refused_with_the_field() {
        let cases = [
            ("[]", "JSON object"),
            (r#"{"name":"n","plugins":[{"type":"manul"}]}"#, "cniVersion"),
            (
                r#"{"name":"n","cniVersion":"1.0.0","plugins":[]}"#,
                "plugins",
            ),
            (
                r#"{"name":"n","cniVersion":"1.0.0","plugins":[{"mtu":0}]}"#,
                "plugins[0].type",
            ),
            (
                r#"{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"manul"},3]}"#,
                "plugins[1]",
            ),
            ("{", "not JSON"),
        ];
        for (template, expected) in cases {
            let error = render(template, &settings(0)).unwrap_err().to_string();
            assert!(error.contains(expected), "{template}: {error}");
        }
    }

    #[test]
    fn a_version_the_plugin_does_not_know_is_refused() {
        let template = DEFAULT_TEMPLATE.replace("1.0.0", "9.9.9");
        assert!(matches!(
            render(&template, &settings(0)),
            Err(ConflistError::Plugin(ConfigError::Version(_)))
        ));
    }
}
