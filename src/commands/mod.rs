//! The one-shot commands the binary runs beside `run`.

/// `ethproofs-daemon doctor`, a check of everything the daemon depends on.
pub mod doctor;
/// `reproduce --inputs DIR`: every kept input proved or checked again, with no node.
pub mod reproduce;
