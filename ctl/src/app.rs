//! Dispatch of a parsed command line: commands that need no datastore (version,
//! completion, validate) run at once; the others open the datastore named by the settings
//! and run against it. Opens the datastore; prints to the `Write` it is given.

use manul_proto::bgpd::RouteMatch;
use std::io::Write;

use crate::{
    cli::{BgpCommand, Cli, Command, IpamCommand, NodeCommand},
    config::{self, Settings},
    connect,
    error::CtlError,
    input::read_documents,
    kinds::ResourceKind,
    store_access::Resources,
    verbs::{
        bgp,
        delete::{self, Target},
        get, ipam, ipam_check, parse_all, patch,
        write::{self, WriteMode},
    },
};
use clap::CommandFactory;

/// Runs `cli`, printing results to `out`; the error is what the binary prints to stderr.
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CtlError> {
    match cli.command {
        Command::Version => {
            let settings = config::resolve(&cli.global)?;
            return version(&settings, out).await;
        }
        Command::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "manulctl", out);
            return Ok(());
        }
        Command::Validate(args) => {
            return write::validate(&read_documents(&args.filename)?, out);
        }
        _ => {}
    }
    let settings = config::resolve(&cli.global)?;
    match cli.command {
        Command::Create(args) | Command::Apply(args) | Command::Replace(args)
            if args.file.filename.is_empty() =>
        {
            Err(CtlError::Usage("-f needs a file name or -".into()))
        }
        Command::Create(args) => {
            let parsed = parse_all(&read_documents(&args.file.filename)?)?;
            let resources = open(&settings, false).await?;
            write::write(
                &resources,
                &parsed,
                WriteMode::Create,
                args.skip_exists,
                out,
            )
            .await
        }
        Command::Apply(args) => {
            let parsed = parse_all(&read_documents(&args.file.filename)?)?;
            let resources = open(&settings, false).await?;
            write::write(&resources, &parsed, WriteMode::Apply, false, out).await
        }
        Command::Replace(args) => {
            let parsed = parse_all(&read_documents(&args.file.filename)?)?;
            let resources = open(&settings, true).await?;
            write::write(&resources, &parsed, WriteMode::Replace, false, out).await
        }
        Command::Delete(args) => {
            let targets = match (&args.filename, &args.kind) {
                (Some(file), _) => delete::targets_of(&read_documents(file)?)?,
                (None, Some(kind)) => {
                    let kind = kind_of(kind)?;
                    if args.names.is_empty() {
                        return Err(CtlError::Usage(format!(
                            "delete {}: name the resources to delete",
                            kind.cli_name()
                        )));
                    }
                    args.names
                        .iter()
                        .map(|name| Target {
                            kind,
                            name: name.clone(),
                            resource_version: None,
                        })
                        .collect()
                }
                (None, None) => {
                    return Err(CtlError::Usage("delete: give -f FILE or KIND NAME".into()));
                }
            };
            let resources = open(&settings, true).await?;
            delete::delete(&resources, &targets, args.skip_not_exists, out).await
        }
        Command::Get(args) => {
            let kind = kind_of(&args.kind)?;
            let resources = open(&settings, true).await?;
            get::get(&resources, kind, &args.names, args.output, out).await
        }
        Command::Patch(args) => {
            let kind = kind_of(&args.kind)?;
            let resources = open(&settings, true).await?;
            patch::patch(&resources, kind, &args.name, &args.patch, out).await
        }
        Command::Label(args) => {
            let kind = kind_of(&args.kind)?;
            let resources = open(&settings, true).await?;
            patch::label(
                &resources,
                kind,
                &args.name,
                &args.label,
                args.overwrite,
                out,
            )
            .await
        }
        Command::Ipam(IpamCommand::Show(args)) if args.show_borrowed => {
            let resources = open(&settings, true).await?;
            ipam_check::show_borrowed(&resources, out).await
        }
        Command::Ipam(IpamCommand::Show(args)) => {
            let resources = open(&settings, true).await?;
            ipam::show(
                &resources,
                args.ip,
                args.show_blocks,
                args.show_configuration,
                out,
            )
            .await
        }
        Command::Ipam(IpamCommand::Check(args)) => {
            let resources = open(&settings, true).await?;
            ipam_check::check(
                &resources,
                args.show_problem_ips,
                args.output.as_deref(),
                out,
            )
            .await
        }
        Command::Ipam(IpamCommand::Release(args)) => {
            let resources = open(&settings, true).await?;
            match &args.from_report {
                Some(report) => ipam_check::release_from_report(&resources, report, out).await,
                None => ipam::release(&resources, &args.ip, out).await,
            }
        }
        Command::Ipam(IpamCommand::Configure(args)) => {
            let resources = open(&settings, false).await?;
            ipam::configure(&resources, &args, out).await
        }
        Command::Node(NodeCommand::Status) => {
            let resources = open(&settings, true).await.ok();
            bgp::node_status(&settings.bgpd_socket, resources.as_ref(), out).await
        }
        Command::Bgp(BgpCommand::Peers { output }) => {
            let resources = open(&settings, true).await.ok();
            bgp::bgp_peers_command(&settings.bgpd_socket, resources.as_ref(), output, out).await
        }
        Command::Bgp(BgpCommand::Routes {
            prefix,
            exact,
            longer,
            output,
        }) => {
            let route_match = match (exact, longer) {
                (true, _) => RouteMatch::Exact,
                (_, true) => RouteMatch::Covered,
                _ => RouteMatch::Covering,
            };
            let filter = prefix
                .as_deref()
                .map(parse_prefix)
                .transpose()?
                .map(|prefix| (prefix, route_match));
            bgp::bgp_routes(&settings.bgpd_socket, filter, output, out).await
        }
        Command::Version | Command::Completion { .. } | Command::Validate(_) => Ok(()),
    }
}

fn kind_of(text: &str) -> Result<ResourceKind, CtlError> {
    ResourceKind::from_cli(text).map_err(CtlError::Usage)
}

/// The resources of the datastore the settings name (see `connect`).
async fn open(settings: &Settings, must_exist: bool) -> Result<Resources, CtlError> {
    Ok(connect::open(settings, must_exist).await?.resources)
}

/// A prefix or a single address (a /32 or /128) for `bgp routes`.
fn parse_prefix(text: &str) -> Result<ipnet::IpNet, CtlError> {
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| CtlError::Usage(format!("{text:?} is not a prefix or an address")))
}

/// `version`: the client's version and commit, and the cluster's when its agent answers
/// (otherwise the datastore type from the settings, and why the agent was not reached).
async fn version(settings: &Settings, out: &mut dyn Write) -> Result<(), CtlError> {
    writeln!(out, "Client Version:    v{}", env!("CARGO_PKG_VERSION"))?;
    writeln!(out, "Git commit:        {}", env!("MANUL_GIT_COMMIT"))?;
    match connect::describe_agent(&settings.agent_socket).await {
        Ok(info) => {
            writeln!(out, "Cluster Version:   v{}", info.agent_version)?;
            writeln!(out, "Cluster Type:      {}", info.datastore_type)?;
            writeln!(
                out,
                "Agent:             node {} at {}",
                info.node_name,
                settings.agent_socket.display()
            )?;
        }
        Err(reason) => {
            writeln!(
                out,
                "Cluster Version:   unknown (manul-agent does not answer on {}: {reason})",
                settings.agent_socket.display()
            )?;
            writeln!(
                out,
                "Cluster Type:      {}",
                manul_agent::raw_store::AgentInfo::datastore_type(&settings.datastore)
            )?;
        }
    }
    Ok(())
}
