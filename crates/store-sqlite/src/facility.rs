//! Facilities, their AE titles and nodes.

use async_trait::async_trait;
use renkei_domain::model::{Facility, Node};
use renkei_domain::{AeTitle, FacilityId};
use renkei_store::{FacilityStore, StoreError};
use sqlx::Row;

use crate::{SqliteStore, map_error, now_unix};

fn corrupt(what: &str) -> StoreError {
    StoreError::Unavailable(format!("invalid {what} in index").into())
}

#[async_trait]
impl FacilityStore for SqliteStore {
    async fn add_facility(&self, facility: &Facility) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_error)?;
        let inserted =
            sqlx::query("INSERT INTO facility (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
                .bind(facility.id.as_str())
                .bind(&facility.name)
                .bind(now_unix())
                .execute(&mut *tx)
                .await
                .map_err(map_error)?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("facility {} already exists", facility.id)));
        }
        for (position, ae) in facility.ae_titles.iter().enumerate() {
            let owner: Option<String> = sqlx::query("SELECT facility_id FROM facility_ae WHERE ae_title = ?")
                .bind(ae.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_error)?
                .map(|row| row.get(0));
            if let Some(owner) = owner {
                return Err(StoreError::Conflict(format!("AE title {ae} already belongs to facility {owner}")));
            }
            sqlx::query("INSERT INTO facility_ae (ae_title, facility_id, position) VALUES (?, ?, ?)")
                .bind(ae.as_str())
                .bind(facility.id.as_str())
                .bind(position as i64)
                .execute(&mut *tx)
                .await
                .map_err(map_error)?;
        }
        tx.commit().await.map_err(map_error)
    }

    async fn facilities(&self) -> Result<Vec<Facility>, StoreError> {
        let rows = sqlx::query(
            "SELECT f.id, f.name, a.ae_title FROM facility f LEFT JOIN facility_ae a ON a.facility_id = f.id \
             ORDER BY f.id, a.position",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        let mut facilities: Vec<Facility> = Vec::new();
        for row in rows {
            let id: String = row.get(0);
            let id = FacilityId::new(&id).map_err(|_| corrupt("facility id"))?;
            if facilities.last().is_none_or(|f| f.id != id) {
                facilities.push(Facility { id, name: row.get(1), ae_titles: Vec::new() });
            }
            if let Some(ae) = row.get::<Option<String>, _>(2) {
                let ae = AeTitle::new(&ae).map_err(|_| corrupt("AE title"))?;
                if let Some(last) = facilities.last_mut() {
                    last.ae_titles.push(ae);
                }
            }
        }
        Ok(facilities)
    }

    async fn facility_of_ae(&self, ae_title: &AeTitle) -> Result<Option<FacilityId>, StoreError> {
        let row = sqlx::query("SELECT facility_id FROM facility_ae WHERE ae_title = ?")
            .bind(ae_title.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        match row {
            None => Ok(None),
            Some(row) => FacilityId::new(row.get(0)).map(Some).map_err(|_| corrupt("facility id")),
        }
    }

    async fn put_node(&self, node: &Node) -> Result<(), StoreError> {
        let known = sqlx::query("SELECT 1 FROM facility WHERE id = ?")
            .bind(node.facility.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        if known.is_none() {
            return Err(StoreError::NotFound(format!("facility {}", node.facility)));
        }
        sqlx::query(
            "INSERT INTO node (facility_id, ae_title, host, port) VALUES (?, ?, ?, ?) \
             ON CONFLICT (facility_id, ae_title) DO UPDATE SET host = excluded.host, port = excluded.port",
        )
        .bind(node.facility.as_str())
        .bind(node.ae_title.as_str())
        .bind(&node.host)
        .bind(i64::from(node.port))
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn node(&self, facility: &FacilityId, ae_title: &AeTitle) -> Result<Option<Node>, StoreError> {
        let row = sqlx::query("SELECT host, port FROM node WHERE facility_id = ? AND ae_title = ?")
            .bind(facility.as_str())
            .bind(ae_title.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(row.map(|row| Node {
            ae_title: ae_title.clone(),
            facility: facility.clone(),
            host: row.get(0),
            port: row.get::<i64, _>(1) as u16,
        }))
    }
}
