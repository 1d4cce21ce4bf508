//! The transport-neutral error kind.

/// What went wrong, in terms every protocol can map: DIMSE maps it to a status,
/// HTTP to a status code with a problem body, FHIR to an OperationOutcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The thing asked for does not exist, or the caller may not know it exists.
    NotFound,
    /// The request or the data sent is malformed or inconsistent.
    Invalid,
    /// The caller is known but not allowed to do this.
    Forbidden,
    /// The request conflicts with the current state.
    Conflict,
    /// A dependency (database, disk) failed; retrying later may work.
    Unavailable,
    /// Storage or memory is exhausted.
    OutOfResources,
}
