//! Certificates for TLS etcd members in tests, made with the `openssl` command: a CA, a
//! server certificate for 127.0.0.1 and a client certificate, all P-256 keys valid for a day.
//! Runs processes and writes files in the given directory.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use super::{EtcdFixtureError, ServerTls, io};
use crate::etcd::EtcdTls;

fn openssl(args: &[&str], dir: &Path) -> Result<(), EtcdFixtureError> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => EtcdFixtureError::Command {
                command: "openssl".into(),
                stderr: "not on PATH: install openssl".into(),
            },
            _ => io("run openssl")(error),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(EtcdFixtureError::Command {
            command: format!("openssl {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// Makes `<name>.key` and `<name>.pem` signed by the CA, with the X.509 extensions in `ext`.
fn signed(dir: &Path, name: &str, subject: &str, ext: &str) -> Result<(), EtcdFixtureError> {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let pem = format!("{name}.pem");
    let ext_file = format!("{name}.ext");
    std::fs::write(dir.join(&ext_file), ext).map_err(io(format!("write {ext_file}")))?;
    let new_key = [
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut args = new_key.to_vec();
    args.extend(["-keyout", &key, "-out", &csr, "-subj", subject]);
    openssl(&args, dir)?;
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            &pem,
            "-extfile",
            &ext_file,
        ],
        dir,
    )
}

/// Makes the CA, the server and the client files in `dir`.
pub(super) fn make(dir: &Path) -> Result<(ServerTls, EtcdTls), EtcdFixtureError> {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=manul test CA",
        ],
        dir,
    )?;
    signed(
        dir,
        "server",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n",
    )?;
    signed(
        dir,
        "client",
        "/CN=manul",
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )?;
    let path = |name: &str| -> PathBuf { dir.join(name) };
    Ok((
        ServerTls {
            ca_file: path("ca.pem"),
            cert_file: path("server.pem"),
            key_file: path("server.key"),
        },
        EtcdTls {
            ca_file: Some(path("ca.pem")),
            cert_file: Some(path("client.pem")),
            key_file: Some(path("client.key")),
        },
    ))
}
