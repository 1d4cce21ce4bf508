//! Facilities, their AE titles and nodes.

use renkei_domain::model::{Facility, Node};
use renkei_domain::{AeTitle, FacilityId};
use renkei_store::StoreError;

use crate::{ColumnType, Sql, Value, corrupt, now_unix};

/// Adds a facility and its AE titles; run it in a transaction, which a conflict rolls back.
pub(crate) async fn add_facility(tx: &mut dyn Sql, facility: &Facility) -> Result<(), StoreError> {
    let insert = tx
        .statement("INSERT INTO facility (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
        .text(facility.id.as_str())
        .text(&facility.name)
        .int(now_unix());
    if tx.execute(&insert).await? == 0 {
        return Err(StoreError::Conflict(format!("facility {} already exists", facility.id)));
    }
    for (position, ae) in facility.ae_titles.iter().enumerate() {
        let owner = tx.statement("SELECT facility_id FROM facility_ae WHERE ae_title = ?").text(ae.as_str());
        if let Some(row) = tx.fetch_optional(&owner, &[ColumnType::Text]).await? {
            let owner = row.into_iter().next().and_then(Value::into_text).unwrap_or_default();
            return Err(StoreError::Conflict(format!("AE title {ae} already belongs to facility {owner}")));
        }
        let insert = tx
            .statement("INSERT INTO facility_ae (ae_title, facility_id, position) VALUES (?, ?, ?)")
            .text(ae.as_str())
            .text(facility.id.as_str())
            .int(position as i64);
        tx.execute(&insert).await?;
    }
    Ok(())
}

pub(crate) async fn facilities(sql: &mut dyn Sql) -> Result<Vec<Facility>, StoreError> {
    let statement = sql.statement(
        "SELECT f.id, f.name, a.ae_title FROM facility f LEFT JOIN facility_ae a ON a.facility_id = f.id \
         ORDER BY f.id, a.position",
    );
    let rows = sql.fetch_all(&statement, &[ColumnType::Text; 3]).await?;
    let mut facilities: Vec<Facility> = Vec::new();
    for row in rows {
        let mut row = row.into_iter().map(Value::into_text);
        let (Some(id), Some(name), ae) = (row.next().flatten(), row.next().flatten(), row.next().flatten()) else {
            return Err(corrupt("facility"));
        };
        let id = FacilityId::new(&id).map_err(|_| corrupt("facility id"))?;
        if facilities.last().is_none_or(|f| f.id != id) {
            facilities.push(Facility { id, name, ae_titles: Vec::new() });
        }
        if let Some(ae) = ae {
            let ae = AeTitle::new(&ae).map_err(|_| corrupt("AE title"))?;
            if let Some(last) = facilities.last_mut() {
                last.ae_titles.push(ae);
            }
        }
    }
    Ok(facilities)
}

pub(crate) async fn facility_of_ae(sql: &mut dyn Sql, ae_title: &AeTitle) -> Result<Option<FacilityId>, StoreError> {
    let statement = sql.statement("SELECT facility_id FROM facility_ae WHERE ae_title = ?").text(ae_title.as_str());
    let row = sql.fetch_optional(&statement, &[ColumnType::Text]).await?;
    match row.and_then(|row| row.into_iter().next()).and_then(Value::into_text) {
        None => Ok(None),
        Some(id) => FacilityId::new(&id).map(Some).map_err(|_| corrupt("facility id")),
    }
}

/// Whether a facility exists.
pub(crate) async fn facility_exists(sql: &mut dyn Sql, facility: &FacilityId) -> Result<bool, StoreError> {
    let statement = sql.statement("SELECT id FROM facility WHERE id = ?").text(facility.as_str());
    Ok(sql.fetch_optional(&statement, &[ColumnType::Text]).await?.is_some())
}

pub(crate) async fn put_node(sql: &mut dyn Sql, node: &Node) -> Result<(), StoreError> {
    if !facility_exists(sql, &node.facility).await? {
        return Err(StoreError::NotFound(format!("facility {}", node.facility)));
    }
    let upsert = sql
        .statement(
            "INSERT INTO node (facility_id, ae_title, host, port) VALUES (?, ?, ?, ?) \
             ON CONFLICT (facility_id, ae_title) DO UPDATE SET host = excluded.host, port = excluded.port",
        )
        .text(node.facility.as_str())
        .text(node.ae_title.as_str())
        .text(&node.host)
        .int(i64::from(node.port));
    sql.execute(&upsert).await?;
    Ok(())
}

pub(crate) async fn node(
    sql: &mut dyn Sql,
    facility: &FacilityId,
    ae_title: &AeTitle,
) -> Result<Option<Node>, StoreError> {
    let statement = sql
        .statement("SELECT host, port FROM node WHERE facility_id = ? AND ae_title = ?")
        .text(facility.as_str())
        .text(ae_title.as_str());
    let Some(row) = sql.fetch_optional(&statement, &[ColumnType::Text, ColumnType::Int]).await? else {
        return Ok(None);
    };
    let Ok([host, port]) = <[Value; 2]>::try_from(row) else { return Err(corrupt("node")) };
    let port = port.as_int().and_then(|p| u16::try_from(p).ok()).ok_or_else(|| corrupt("node port"))?;
    Ok(Some(Node {
        ae_title: ae_title.clone(),
        facility: facility.clone(),
        host: host.into_text().ok_or_else(|| corrupt("node host"))?,
        port,
    }))
}
