//! API tokens: 256 random bits from the operating system, shown once, stored only as their
//! BLAKE3 hash. A stolen index reveals no usable token.

use renkei_domain::ErrorKind;
use renkei_domain::model::Principal;

use crate::{Archive, ServiceError};

/// Marks Renkei tokens, so that secret scanners and people can tell them apart.
const PREFIX: &str = "rk_";

fn hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

impl Archive {
    /// Creates a token for `principal` and returns it; it cannot be recovered later.
    pub async fn create_token(&self, principal: &Principal) -> Result<String, ServiceError> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)
            .map_err(|e| ServiceError { kind: ErrorKind::Unavailable, message: format!("no random source: {e}") })?;
        let token: String =
            std::iter::once(PREFIX.to_owned()).chain(secret.iter().map(|b| format!("{b:02x}"))).collect();
        self.tokens.add_token(&hash(&token), principal).await?;
        Ok(token)
    }

    /// The principal a presented token stands for, if any.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, ServiceError> {
        if !token.starts_with(PREFIX) {
            return Ok(None);
        }
        Ok(self.tokens.principal(&hash(token)).await?)
    }
}
