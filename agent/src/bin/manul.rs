//! manul: the CNI plugin binary. Reads CNI_* from the environment and the network config from
//! stdin, forwards the command to manul-agent (gRPC on its Unix socket), prints the CNI result
//! or error JSON on stdout and exits 0 or 1. Does I/O.

use std::{
    io::{Read, Write},
    process::ExitCode,
};

use manul_agent::cni::{self, CniError, CniVersion, EnvVars, ErrorKind};

/// Larger configs are refused (a real one is a few KiB).
const MAX_STDIN: u64 = 16 << 20;

fn usage() -> String {
    format!(
        "manul {} — the manul CNI plugin (CNI {})\n\
         It is run by a container runtime with CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS,\n\
         CNI_IFNAME, CNI_PATH (and CNI_ARGS) set and the network config on stdin; it forwards\n\
         the request to manul-agent on its Unix socket. Try: CNI_COMMAND=VERSION manul </dev/null\n",
        env!("CARGO_PKG_VERSION"),
        CniVersion::SUPPORTED.map(|v| v.as_str()).join(", "),
    )
}

fn emit(stdout: &str, exit_code: i32) -> ExitCode {
    let mut out = std::io::stdout().lock();
    // Nothing useful can be done if the runtime closed our stdout.
    let _ = out.write_all(stdout.as_bytes());
    let _ = out.flush();
    if exit_code == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn fail(error: CniError) -> ExitCode {
    eprintln!("manul: {error}");
    emit(&(error.to_json(None) + "\n"), 1)
}

fn main() -> ExitCode {
    let vars = EnvVars::from_os(std::env::vars_os());
    if let Err(e) = vars.command() {
        let wants_version = std::env::args()
            .skip(1)
            .any(|a| a == "--version" || a == "-V");
        if wants_version && matches!(vars.get("CNI_COMMAND"), Ok(None)) {
            println!("manul {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        // Run by hand: say what the binary is, and answer as a CNI plugin would.
        eprint!("{}", usage());
        return fail(e.into());
    }

    let mut stdin = Vec::new();
    if let Err(e) = std::io::stdin().take(MAX_STDIN + 1).read_to_end(&mut stdin) {
        return fail(CniError::new(
            ErrorKind::Io,
            format!("cannot read stdin: {e}"),
        ));
    }
    if stdin.len() as u64 > MAX_STDIN {
        return fail(CniError::new(
            ErrorKind::Decode,
            format!("network config on stdin is larger than {MAX_STDIN} bytes"),
        ));
    }

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return fail(CniError::new(
                ErrorKind::Io,
                format!("cannot start tokio: {e}"),
            ));
        }
    };
    let out = runtime.block_on(cni::run(&vars, &stdin));
    if let Some(error) = &out.error {
        eprintln!(
            "manul: {}: {error}",
            vars.command().map(|c| c.as_str()).unwrap_or("?")
        );
    }
    emit(&out.stdout, out.exit_code)
}
