//! The `Backup` RPC's confinement: the backup root a server was started
//! with, and the check that puts every destination a client names under
//! it. A client names a path on the server's machine, so without a root the
//! call is refused, and with one it can never write anywhere else: `..` is
//! refused, absolute paths must lie under the root, and the part of the
//! path that exists must resolve (symbolic links followed) inside it. A
//! server of many tenants gives each tenant's calls the root
//! `<root>/<tenant>/` instead ([`BackupRoot::for_tenant`]).

use std::path::{Component, Path, PathBuf};

use tonic::Status;

use super::convert::{denied, invalid};
use crate::ServeError;
use crate::proto::gesta_v1 as g;

/// The directory under which backups may be written, canonical.
#[derive(Clone, Debug)]
pub(crate) struct BackupRoot(PathBuf);

impl BackupRoot {
    /// The root `dir`, which must be an existing directory.
    pub(crate) fn new(dir: &Path) -> Result<BackupRoot, ServeError> {
        let root = dir.canonicalize().map_err(|e| {
            ServeError::Config(format!("the backup directory {}: {e}", dir.display()))
        })?;
        if !root.is_dir() {
            return Err(ServeError::Config(format!(
                "the backup directory {} is not a directory",
                dir.display()
            )));
        }
        Ok(BackupRoot(root))
    }

    /// The directory itself.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// The root of `tenant`'s backups, `<root>/<tenant>/` (made if
    /// missing): a tenant's calls resolve their destinations under it, so
    /// no tenant can write into, overwrite or read the name of another's
    /// backups. The tenant's name is one plain path component (see
    /// [`gesta::tenants::check_tenant_name`]); a `<root>/<tenant>` that is
    /// not a directory of its own (a symbolic link elsewhere) is refused.
    pub(crate) fn for_tenant(&self, tenant: &str) -> Result<BackupRoot, Status> {
        gesta::tenants::check_tenant_name(tenant).map_err(|e| denied(e.to_string()))?;
        let dir = self.0.join(tenant);
        if let Err(e) = std::fs::create_dir(&dir)
            && e.kind() != std::io::ErrorKind::AlreadyExists
        {
            return Err(Status::internal(format!(
                "the tenant's backup directory {}: {e}",
                dir.display()
            )));
        }
        match dir.canonicalize() {
            Ok(canonical) if canonical == dir && canonical.is_dir() => Ok(BackupRoot(canonical)),
            _ => Err(denied(format!(
                "the tenant's backup directory {} is not a directory of its own",
                dir.display()
            ))),
        }
    }

    /// Where a backup to `destination` goes, or why it may not.
    pub(crate) fn resolve(&self, destination: &str) -> Result<PathBuf, Status> {
        if destination.is_empty() {
            return Err(invalid("the backup destination is empty"));
        }
        if destination.contains('\0') {
            return Err(invalid("the backup destination holds a NUL byte"));
        }
        let path = Path::new(destination);
        let relative = if path.is_absolute() {
            path.strip_prefix(&self.0).map_err(|_| {
                denied(format!(
                    "the backup destination {destination} is not under the backup root"
                ))
            })?
        } else {
            path
        };
        let mut resolved = self.0.clone();
        for component in relative.components() {
            match component {
                Component::Normal(name) => resolved.push(name),
                Component::CurDir => {}
                Component::ParentDir => {
                    return Err(invalid(format!(
                        "the backup destination {destination} holds \"..\""
                    )));
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(invalid(format!(
                        "the backup destination {destination} is not a plain path"
                    )));
                }
            }
        }
        if resolved == self.0 {
            return Err(invalid(
                "the backup destination names the backup root itself",
            ));
        }
        // The part of the path that exists must stay inside the root once
        // its symbolic links are followed.
        let mut existing = resolved.parent();
        while let Some(dir) = existing {
            if dir.symlink_metadata().is_ok() {
                break;
            }
            existing = dir.parent();
        }
        let inside = existing
            .and_then(|dir| dir.canonicalize().ok())
            .is_some_and(|dir| dir.starts_with(&self.0));
        if !inside {
            return Err(denied(format!(
                "the backup destination {destination} leads out of the backup root"
            )));
        }
        Ok(resolved)
    }
}

pub(crate) fn report_to_proto(r: gesta::BackupReport) -> g::BackupResponse {
    g::BackupResponse {
        position: r.position,
        path: r.path.display().to_string(),
        files_linked: r.files_linked,
        files_copied: r.files_copied,
        bytes_copied: r.bytes_copied,
        segments: r.segments,
        index_runs: r.index_runs,
        index_runs_left_out: r.index_runs_left_out,
        lifecycle_entries: r.lifecycle_entries,
        lifecycle_entries_left_out: r.lifecycle_entries_left_out,
        snapshots: r.snapshots,
        snapshots_left_out: r.snapshots_left_out,
        cursors: r.cursors,
        cursors_moved_back: r.cursors_moved_back,
        keys_left_out: r.keys_left_out,
    }
}

pub(crate) fn report_from_proto(r: g::BackupResponse) -> gesta::BackupReport {
    let mut report = gesta::BackupReport::default();
    report.position = r.position;
    report.path = PathBuf::from(r.path);
    report.files_linked = r.files_linked;
    report.files_copied = r.files_copied;
    report.bytes_copied = r.bytes_copied;
    report.segments = r.segments;
    report.index_runs = r.index_runs;
    report.index_runs_left_out = r.index_runs_left_out;
    report.lifecycle_entries = r.lifecycle_entries;
    report.lifecycle_entries_left_out = r.lifecycle_entries_left_out;
    report.snapshots = r.snapshots;
    report.snapshots_left_out = r.snapshots_left_out;
    report.cursors = r.cursors;
    report.cursors_moved_back = r.cursors_moved_back;
    report.keys_left_out = r.keys_left_out;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Result<PathBuf, Status>) -> tonic::Code {
        r.expect_err("accepted").code()
    }

    #[test]
    fn destinations_stay_under_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = BackupRoot::new(tmp.path()).unwrap();
        let canonical = tmp.path().canonicalize().unwrap();
        assert_eq!(root.resolve("b1").unwrap(), canonical.join("b1"));
        assert_eq!(
            root.resolve("./daily/b2").unwrap(),
            canonical.join("daily/b2")
        );
        let absolute = canonical.join("b3");
        assert_eq!(root.resolve(absolute.to_str().unwrap()).unwrap(), absolute);

        use tonic::Code;
        assert_eq!(code(root.resolve("")), Code::InvalidArgument);
        assert_eq!(code(root.resolve("../escape")), Code::InvalidArgument);
        assert_eq!(code(root.resolve("a/../../escape")), Code::InvalidArgument);
        assert_eq!(code(root.resolve(".")), Code::InvalidArgument);
        assert_eq!(code(root.resolve("/tmp/elsewhere")), Code::PermissionDenied);

        // A symbolic link inside the root that leads out of it.
        #[cfg(unix)]
        {
            let outside = tempfile::tempdir().unwrap();
            std::os::unix::fs::symlink(outside.path(), tmp.path().join("link")).unwrap();
            assert_eq!(code(root.resolve("link/b4")), Code::PermissionDenied);
            assert_eq!(code(root.resolve("link/deeper/b5")), Code::PermissionDenied);
        }
    }

    #[test]
    fn a_tenant_writes_under_its_own_directory_only() {
        use tonic::Code;
        let tmp = tempfile::tempdir().unwrap();
        let root = BackupRoot::new(tmp.path()).unwrap();
        let canonical = tmp.path().canonicalize().unwrap();
        let alpha = root.for_tenant("alpha").unwrap();
        assert!(canonical.join("alpha").is_dir());
        assert_eq!(alpha.resolve("b1").unwrap(), canonical.join("alpha/b1"));
        // Again: the directory exists, and is the same root.
        let again = root.for_tenant("alpha").unwrap();
        assert_eq!(again.resolve("b1").unwrap(), canonical.join("alpha/b1"));
        let beta = canonical.join("beta/b1");
        assert_eq!(
            code(alpha.resolve(beta.to_str().unwrap())),
            Code::PermissionDenied
        );
        assert_eq!(code(alpha.resolve("../beta/b1")), Code::InvalidArgument);
        for bad in ["", "..", "../x", "a/b", "A"] {
            assert_eq!(
                root.for_tenant(bad).expect_err(bad).code(),
                Code::PermissionDenied
            );
        }
        // A tenant's directory that leads elsewhere is not used.
        #[cfg(unix)]
        {
            let outside = tempfile::tempdir().unwrap();
            std::os::unix::fs::symlink(outside.path(), tmp.path().join("gamma")).unwrap();
            assert_eq!(
                root.for_tenant("gamma").expect_err("a link").code(),
                Code::PermissionDenied
            );
        }
    }

    #[test]
    fn the_root_must_be_a_directory() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(BackupRoot::new(&tmp.path().join("missing")).is_err());
        let file = tmp.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(BackupRoot::new(&file).is_err());
    }
}
