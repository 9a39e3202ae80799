//! Mailbox: an e-mail address with its messages.

use super::hosted::hosted_kind;

hosted_kind! {
    /// An e-mail mailbox hosted for an account.
    kind = "Mailbox", shortname = "mbx", doc = "An e-mail mailbox with its messages";
    pub struct MailboxSpec {
        /// The mailbox's e-mail address.
        pub address: String,
    }
}
