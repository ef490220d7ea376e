//! Names of files at the top of a store directory that more than one
//! module needs: the store refuses directories holding anything else, and
//! crypto-shredding keeps its key file there. Here, below both, so that
//! neither imports the other for a name.

/// The name of the `encryption` wrapper's key file in a store directory.
pub(crate) const KEY_FILE_NAME: &str = "KEYS";
