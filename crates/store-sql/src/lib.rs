//! The index logic both SQL backends share, written once against a narrow [`Sql`] seam.
//!
//! - [`Dialect`]: the few places where SQLite and PostgreSQL spell SQL differently.
//! - [`Statement`], [`Value`], [`ColumnType`] and the [`Sql`] trait: what a backend implements
//!   (run a statement, fetch typed rows) over its own connections and transactions.
//! - `query`: the tested builder of C-FIND/QIDO and retrieval SELECTs.
//! - `instances`: group-committed instance writes with their patient/study/series upserts,
//!   and the reads that turn rows into domain types.
//! - `facilities`, `tokens`, `tiers`, `mpi`: the other stores' statements.
//! - [`SqlStore`]: every store trait implemented once over a [`SqlBackend`] (reads,
//!   transactions, and the backend's own way of recording a batch).
//! - `migration`: version bookkeeping for expand/contract upgrades.
//!
//! The backends (`store-sqlite`, `store-postgres`) own connections, transactions, locking,
//! error codes and their schema files; every statement text is here.

mod dose;
mod driver;
mod facilities;
mod instances;
pub mod migration;
mod mpi;
mod query;
mod sharing;
mod store;
mod tiers;
mod tokens;

use std::borrow::Cow;

use async_trait::async_trait;
use renkei_store::StoreError;

pub use driver::{Driver, On};
use facilities::{add_facility, facilities, facility_of_ae, node, put_node};
pub use instances::{UpsertCache, record_all};
use instances::{find, retrieve, stats};
pub use store::{SqlBackend, SqlStore, SqlTransaction};
use tiers::{
    access_report, cold_blobs_of_patient, cold_candidates, mark_cold, record_accesses, release_lease, tier_stats,
    try_lease,
};
use tokens::{add_token, principal};

/// The SQL dialect of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The statement with its `?` placeholders in this dialect's form: PostgreSQL numbers
    /// them (`$1`, `$2`, …). No statement here has a `?` inside a string literal.
    pub fn placeholders<'a>(&self, sql: &'a str) -> Cow<'a, str> {
        match self {
            Dialect::Sqlite => Cow::Borrowed(sql),
            Dialect::Postgres => {
                let mut out = String::with_capacity(sql.len() + 16);
                let mut n = 0;
                for c in sql.chars() {
                    if c == '?' {
                        n += 1;
                        out.push_str(&format!("${n}"));
                    } else {
                        out.push(c);
                    }
                }
                Cow::Owned(out)
            }
        }
    }
}

/// A value bound to a placeholder, or read from a column.
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Text(String),
    Int(i64),
    /// A measurement (dose metrics). Bind it as `CAST(? AS DOUBLE PRECISION)` where it may
    /// be NULL: PostgreSQL takes an untyped NULL for text.
    Real(f64),
}

/// Values are compared bit for bit (they key the upsert cache; no NaN is ever bound twice
/// as different keys).
impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Text(a), Value::Text(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Real(a), Value::Real(b)) => a.to_bits() == b.to_bits(),
            _ => false,
        }
    }
}

impl Eq for Value {}

impl std::hash::Hash for Value {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Value::Null => {}
            Value::Text(text) => text.hash(state),
            Value::Int(int) => int.hash(state),
            Value::Real(real) => real.to_bits().hash(state),
        }
    }
}

impl Value {
    pub fn text(value: Option<&str>) -> Value {
        value.map_or(Value::Null, |v| Value::Text(v.to_owned()))
    }

    /// The text of a text column, `None` for NULL.
    pub fn into_text(self) -> Option<String> {
        match self {
            Value::Text(text) => Some(text),
            Value::Int(int) => Some(int.to_string()),
            Value::Real(real) => Some(real.to_string()),
            Value::Null => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(int) => Some(*int),
            _ => None,
        }
    }

    pub fn as_real(&self) -> Option<f64> {
        match self {
            Value::Real(real) => Some(*real),
            _ => None,
        }
    }
}

/// A statement in a dialect and the values to bind to its placeholders, in order.
#[derive(Debug, PartialEq, Eq)]
pub struct Statement {
    pub sql: String,
    pub binds: Vec<Value>,
}

impl Statement {
    /// A statement written with `?` placeholders, put in `dialect`'s form.
    pub fn new(dialect: Dialect, sql: &str) -> Statement {
        Statement { sql: dialect.placeholders(sql).into_owned(), binds: Vec::new() }
    }

    pub fn bind(mut self, value: Value) -> Statement {
        self.binds.push(value);
        self
    }

    pub fn text(self, value: &str) -> Statement {
        self.bind(Value::Text(value.to_owned()))
    }

    pub fn optional(self, value: &Option<String>) -> Statement {
        self.bind(Value::text(value.as_deref()))
    }

    pub fn int(self, value: i64) -> Statement {
        self.bind(Value::Int(value))
    }

    /// A measurement or NULL (bound to a `CAST(? AS DOUBLE PRECISION)`).
    pub fn real(self, value: Option<f64>) -> Statement {
        self.bind(value.map_or(Value::Null, Value::Real))
    }
}

/// How a selected column is read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Text, or NULL.
    Text,
    /// A 64-bit integer (keys, sizes, counts), or NULL.
    Int,
    /// A double (measurements), or NULL.
    Real,
}

/// A connection, pool or transaction of a backend: where shared code runs statements.
#[async_trait]
pub trait Sql: Send {
    fn dialect(&self) -> Dialect;
    /// Runs SQL text of one or more statements without binds (a migration).
    async fn execute_script(&mut self, sql: &str) -> Result<(), StoreError>;
    /// Runs a statement; returns the number of rows it changed.
    async fn execute(&mut self, statement: &Statement) -> Result<u64, StoreError>;
    /// Runs a query; returns its rows, each column read as `columns` says.
    async fn fetch_all(&mut self, statement: &Statement, columns: &[ColumnType])
    -> Result<Vec<Vec<Value>>, StoreError>;

    /// The first row, if any.
    async fn fetch_optional(
        &mut self,
        statement: &Statement,
        columns: &[ColumnType],
    ) -> Result<Option<Vec<Value>>, StoreError> {
        Ok(self.fetch_all(statement, columns).await?.into_iter().next())
    }

    fn statement(&self, sql: &str) -> Statement {
        Statement::new(self.dialect(), sql)
    }
}

/// `n` placeholders for an `IN (…)` list.
pub(crate) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// A row that does not hold what the schema promises.
pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Unavailable(format!("invalid {what} in index").into())
}

/// Seconds since the Unix epoch: the time rows are stamped with.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_numbers_placeholders() {
        assert_eq!(Dialect::Postgres.placeholders("a = ? AND b IN (?, ?)"), "a = $1 AND b IN ($2, $3)");
        assert_eq!(Dialect::Sqlite.placeholders("a = ?"), "a = ?");
    }
}
