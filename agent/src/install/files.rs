//! Writing and removing the files `install-cni` puts on the host. A write goes to a temporary
//! file in the target directory, is synced, given its mode and renamed over the target, so a
//! runtime never sees half a plugin or half a conflist; a file whose content and mode are
//! already right is not touched (its mtime stays). Does I/O (the filesystem).

use std::{
    fs,
    io::{ErrorKind, Write},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: has no parent directory or file name")]
    BadPath(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What `install_file` or `remove_file` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileOutcome {
    /// The file already had this content and mode.
    Unchanged,
    Written,
    Removed,
    /// There was nothing to remove.
    Absent,
}

/// Puts `content` at `target` with `mode` (creating the directory), atomically, unless it is
/// there already.
pub fn install_file(target: &Path, content: &[u8], mode: u32) -> Result<FileOutcome, FileError> {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(FileError::BadPath(target.to_path_buf()));
    };
    match fs::read(target) {
        Ok(current) if current == content => {
            let metadata = fs::metadata(target).map_err(io(target))?;
            if metadata.permissions().mode() & 0o7777 == mode {
                return Ok(FileOutcome::Unchanged);
            }
        }
        Ok(_) => {}
        Err(error) if error.kind() == ErrorKind::NotFound => {}
        Err(error) => return Err(io(target)(error)),
    }
    fs::create_dir_all(dir).map_err(io(dir))?;
    let temporary = dir.join(format!(
        ".{}.manul-tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = write_synced(&temporary, content, mode)
        .and_then(|()| fs::rename(&temporary, target).map_err(io(target)));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written?;
    // The rename is durable once the directory is synced.
    if let Ok(directory) = fs::File::open(dir) {
        let _ = directory.sync_all();
    }
    Ok(FileOutcome::Written)
}

fn write_synced(path: &Path, content: &[u8], mode: u32) -> Result<(), FileError> {
    let mut file = fs::File::create(path).map_err(io(path))?;
    file.write_all(content).map_err(io(path))?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// Removes `target` if it exists.
pub fn remove_file(target: &Path) -> Result<FileOutcome, FileError> {
    match fs::remove_file(target) {
        Ok(()) => Ok(FileOutcome::Removed),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(FileOutcome::Absent),
        Err(error) => Err(io(target)(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mtime(path: &Path) -> std::time::SystemTime {
        fs::metadata(path).unwrap().modified().unwrap()
    }

    #[test]
    fn writes_creating_the_directory_then_leaves_an_identical_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a/b/plugin");
        assert_eq!(
            install_file(&target, b"v1", 0o755).unwrap(),
            FileOutcome::Written
        );
        assert_eq!(fs::read(&target).unwrap(), b"v1");
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o7777,
            0o755
        );
        let before = mtime(&target);
        assert_eq!(
            install_file(&target, b"v1", 0o755).unwrap(),
            FileOutcome::Unchanged
        );
        assert_eq!(mtime(&target), before);
        // Nothing but the target is left in the directory.
        let names: Vec<_> = fs::read_dir(target.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("plugin")]);
    }

    #[test]
    fn other_content_or_mode_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("conf");
        install_file(&target, b"old", 0o644).unwrap();
        assert_eq!(
            install_file(&target, b"new", 0o644).unwrap(),
            FileOutcome::Written
        );
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert_eq!(
            install_file(&target, b"new", 0o600).unwrap(),
            FileOutcome::Written
        );
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o7777,
            0o600
        );
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a non-empty directory: the rename fails.
        let target = dir.path().join("taken");
        fs::create_dir_all(target.join("inside")).unwrap();
        assert!(install_file(&target, b"x", 0o644).is_err());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("taken")]);
    }

    #[test]
    fn remove_reports_what_it_found() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("conf");
        assert_eq!(remove_file(&target).unwrap(), FileOutcome::Absent);
        fs::write(&target, b"x").unwrap();
        assert_eq!(remove_file(&target).unwrap(), FileOutcome::Removed);
        assert!(!target.exists());
    }
}
