//! API tokens, as hashes.

use async_trait::async_trait;
use renkei_domain::FacilityId;
use renkei_domain::model::{Principal, Role};
use renkei_store::{StoreError, TokenStore};
use sqlx::Row;

use crate::{SqliteStore, map_error, now_unix};

#[async_trait]
impl TokenStore for SqliteStore {
    async fn add_token(&self, hash: &str, principal: &Principal) -> Result<(), StoreError> {
        if let Some(facility) = &principal.facility {
            let known = sqlx::query("SELECT 1 FROM facility WHERE id = ?")
                .bind(facility.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_error)?;
            if known.is_none() {
                return Err(StoreError::NotFound(format!("facility {facility}")));
            }
        }
        sqlx::query("INSERT INTO token (hash, facility_id, role, created_at) VALUES (?, ?, ?, ?)")
            .bind(hash)
            .bind(principal.facility.as_ref().map(FacilityId::as_str))
            .bind(principal.role.as_str())
            .bind(now_unix())
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn principal(&self, hash: &str) -> Result<Option<Principal>, StoreError> {
        let row = sqlx::query("SELECT facility_id, role FROM token WHERE hash = ?")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        let Some(row) = row else { return Ok(None) };
        let corrupt = || StoreError::Unavailable("invalid token row in index".into());
        let facility = match row.get::<Option<String>, _>(0) {
            Some(id) => Some(FacilityId::new(&id).map_err(|_| corrupt())?),
            None => None,
        };
        let role = Role::parse(row.get::<&str, _>(1)).ok_or_else(corrupt)?;
        Ok(Some(Principal { facility, role }))
    }
}
