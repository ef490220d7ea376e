//! Names of files at the top of a store directory that more than one
//! module needs: the store refuses directories holding anything else, and
//! crypto-shredding keeps its key file there. Here, below both, so that
//! neither imports the other for a name.

/// The name of the `encryption` wrapper's key file in a store directory.
pub(crate) const KEY_FILE_NAME: &str = "KEYS";

/// The name of the mark the `encryption` wrapper leaves in a store
/// directory beside its key file: it outlives a lost key file, so that
/// every door still opens the store as encrypted and the wrapper refuses
/// to replace the lost keys with new ones.
pub(crate) const ENCRYPTED_MARK_NAME: &str = "ENCRYPTED";
