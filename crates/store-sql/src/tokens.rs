//! API tokens, as hashes.

use renkei_domain::FacilityId;
use renkei_domain::model::{Principal, Role};
use renkei_store::StoreError;

use crate::facilities::facility_exists;
use crate::{ColumnType, Sql, Value, corrupt, now_unix};

pub(crate) async fn add_token(sql: &mut dyn Sql, hash: &str, principal: &Principal) -> Result<(), StoreError> {
    if let Some(facility) = &principal.facility
        && !facility_exists(sql, facility).await?
    {
        return Err(StoreError::NotFound(format!("facility {facility}")));
    }
    let insert = sql
        .statement("INSERT INTO token (hash, facility_id, role, created_at) VALUES (?, ?, ?, ?)")
        .text(hash)
        .bind(Value::text(principal.facility.as_ref().map(FacilityId::as_str)))
        .text(principal.role.as_str())
        .int(now_unix());
    sql.execute(&insert).await?;
    Ok(())
}

pub(crate) async fn principal(sql: &mut dyn Sql, hash: &str) -> Result<Option<Principal>, StoreError> {
    let statement = sql.statement("SELECT facility_id, role FROM token WHERE hash = ?").text(hash);
    let Some(row) = sql.fetch_optional(&statement, &[ColumnType::Text; 2]).await? else { return Ok(None) };
    let Ok([facility, role]) = <[Value; 2]>::try_from(row) else { return Err(corrupt("token")) };
    let facility = match facility.into_text() {
        Some(id) => Some(FacilityId::new(&id).map_err(|_| corrupt("token facility"))?),
        None => None,
    };
    let role = role.into_text().as_deref().and_then(Role::parse).ok_or_else(|| corrupt("token role"))?;
    Ok(Some(Principal { facility, role }))
}
