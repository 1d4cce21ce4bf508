//! [`On`]: the [`Sql`] seam over any sqlx driver, so that each backend only names its
//! database type, dialect and error codes (its [`Driver`]).

use async_trait::async_trait;
use renkei_store::StoreError;
use sqlx::database::HasStatementCache;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use crate::{ColumnType, Dialect, Sql, SqlTransaction, Statement, Value};

/// A backend's sqlx database, and what it means for [`On`]: its dialect and error codes.
pub trait Driver: Send + Sync + 'static {
    type DB: Database;
    const DIALECT: Dialect;
    /// Maps a driver error to a store error (full disk, conflict, unavailable).
    fn store_error(error: sqlx::Error) -> StoreError;
    fn rows_affected(result: &<Self::DB as Database>::QueryResult) -> u64;
}

/// Where statements run: a pool, one connection, or a transaction.
pub enum On<'a, D: Driver> {
    Pool(&'a Pool<D::DB>),
    Connection(&'a mut <D::DB as Database>::Connection),
    Transaction(sqlx::Transaction<'static, D::DB>),
}

/// `statement` as a sqlx query for `D`.
///
/// PostgreSQL types a prepared statement's parameters from the values of its first run, and
/// sqlx caches it by text: a NULL (bound as text) there would make every later value in that
/// place be read as text. So a PostgreSQL statement that binds NULL is prepared afresh, and
/// only one without NULLs is kept.
fn query<D: Driver>(statement: &Statement) -> sqlx::query::Query<'_, D::DB, <D::DB as Database>::Arguments>
where
    D::DB: HasStatementCache,
    for<'t> &'t str: Encode<'t, D::DB> + Type<D::DB>,
    for<'t> Option<&'t str>: Encode<'t, D::DB> + Type<D::DB>,
    for<'t> i64: Encode<'t, D::DB> + Type<D::DB>,
    for<'t> f64: Encode<'t, D::DB> + Type<D::DB>,
{
    let binds_null = statement.binds.contains(&Value::Null);
    let mut query = sqlx::query(sqlx::AssertSqlSafe(statement.sql.as_str()))
        .persistent(!(D::DIALECT == Dialect::Postgres && binds_null));
    for value in &statement.binds {
        query = match value {
            Value::Null => query.bind(None::<&str>),
            Value::Text(text) => query.bind(text.as_str()),
            Value::Int(int) => query.bind(*int),
            Value::Real(real) => query.bind(*real),
        };
    }
    query
}

fn read_row<D: Driver>(row: &<D::DB as Database>::Row, columns: &[ColumnType]) -> Result<Vec<Value>, StoreError>
where
    for<'r> &'r str: Decode<'r, D::DB> + Type<D::DB>,
    for<'r> i64: Decode<'r, D::DB> + Type<D::DB>,
    for<'r> f64: Decode<'r, D::DB> + Type<D::DB>,
    usize: ColumnIndex<<D::DB as Database>::Row>,
{
    let mut values = Vec::with_capacity(columns.len());
    for (index, column) in columns.iter().enumerate() {
        values.push(match column {
            ColumnType::Text => Value::text(row.try_get::<Option<&str>, _>(index).map_err(D::store_error)?),
            ColumnType::Int => {
                row.try_get::<Option<i64>, _>(index).map_err(D::store_error)?.map_or(Value::Null, Value::Int)
            }
            ColumnType::Real => {
                row.try_get::<Option<f64>, _>(index).map_err(D::store_error)?.map_or(Value::Null, Value::Real)
            }
        });
    }
    Ok(values)
}

#[async_trait]
impl<D> Sql for On<'_, D>
where
    D: Driver,
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    <D::DB as Database>::Arguments: IntoArguments<D::DB>,
    D::DB: HasStatementCache,
    for<'t> &'t str: Encode<'t, D::DB> + Decode<'t, D::DB> + Type<D::DB>,
    for<'t> Option<&'t str>: Encode<'t, D::DB> + Type<D::DB>,
    for<'t> i64: Encode<'t, D::DB> + Decode<'t, D::DB> + Type<D::DB>,
    for<'t> f64: Encode<'t, D::DB> + Decode<'t, D::DB> + Type<D::DB>,
    usize: ColumnIndex<<D::DB as Database>::Row>,
{
    fn dialect(&self) -> Dialect {
        D::DIALECT
    }

    async fn execute_script(&mut self, sql: &str) -> Result<(), StoreError> {
        let script = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()));
        match self {
            On::Pool(pool) => script.execute(*pool).await,
            On::Connection(connection) => script.execute(&mut **connection).await,
            On::Transaction(tx) => script.execute(&mut **tx).await,
        }
        .map(drop)
        .map_err(D::store_error)
    }

    async fn execute(&mut self, statement: &Statement) -> Result<u64, StoreError> {
        match self {
            On::Pool(pool) => query::<D>(statement).execute(*pool).await,
            On::Connection(connection) => query::<D>(statement).execute(&mut **connection).await,
            On::Transaction(tx) => query::<D>(statement).execute(&mut **tx).await,
        }
        .map(|done| D::rows_affected(&done))
        .map_err(D::store_error)
    }

    async fn fetch_all(
        &mut self,
        statement: &Statement,
        columns: &[ColumnType],
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        let rows = match self {
            On::Pool(pool) => query::<D>(statement).fetch_all(*pool).await,
            On::Connection(connection) => query::<D>(statement).fetch_all(&mut **connection).await,
            On::Transaction(tx) => query::<D>(statement).fetch_all(&mut **tx).await,
        }
        .map_err(D::store_error)?;
        rows.iter().map(|row| read_row::<D>(row, columns)).collect()
    }
}

#[async_trait]
impl<D> SqlTransaction for On<'_, D>
where
    D: Driver,
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    <D::DB as Database>::Arguments: IntoArguments<D::DB>,
    D::DB: HasStatementCache,
    for<'t> &'t str: Encode<'t, D::DB> + Decode<'t, D::DB> + Type<D::DB>,
    for<'t> Option<&'t str>: Encode<'t, D::DB> + Type<D::DB>,
    for<'t> i64: Encode<'t, D::DB> + Decode<'t, D::DB> + Type<D::DB>,
    for<'t> f64: Encode<'t, D::DB> + Decode<'t, D::DB> + Type<D::DB>,
    usize: ColumnIndex<<D::DB as Database>::Row>,
{
    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        match *self {
            On::Transaction(tx) => tx.commit().await.map_err(D::store_error),
            On::Pool(_) | On::Connection(_) => Ok(()),
        }
    }
}
